#!/usr/bin/env python3
"""Runs one shell command in a vSnoop lab guest through its serial console.

    console.py SERIAL_SOCKET [--timeout SECONDS] COMMAND

The guest (lab/guest/init.sh) keeps a shell on ttyS0 with echo off; qemu exposes ttyS0 as a
unix socket. The command travels base64-encoded (no quoting or tty line-discipline surprises)
and runs as `sh` with stderr joined to stdout. Its output is framed by two markers that carry a
random nonce; each marker is printed as two printf arguments, so the marker text never appears
in what is sent, only in what the guest prints. Prints the output, exits with the command's
exit status; 124 on timeout, 2 on a connection error.

One client at a time: qemu serves the socket to a single client, so callers are serialised
with an flock on SERIAL_SOCKET.lock. Lines the guest prints on its own while the command runs
(the sink's SHA256 lines) can appear in the output.
"""

import argparse
import base64
import fcntl
import re
import secrets
import socket
import sys
import time

# The tty's canonical mode holds at most 4095 bytes per line; stay well below.
CHUNK = 512


def build_input(command: str, nonce: str) -> bytes:
    encoded = base64.b64encode(command.encode()).decode()
    script = f"/tmp/.vsg-cmd-{nonce}"
    lines = [f": >{script}"]
    for i in range(0, len(encoded), CHUNK):
        lines.append(f"printf %s {encoded[i:i + CHUNK]} >>{script}")
    lines.append(
        f"printf '%s_%s\\n' VSGBEGIN {nonce}; base64 -d {script} | sh 2>&1; "
        f"printf '%s_%s_%s\\n' VSGEND {nonce} $?; rm -f {script}"
    )
    return ("\n".join(lines) + "\n").encode()


def run(socket_path: str, command: str, timeout: float) -> int:
    nonce = secrets.token_hex(8)
    begin = f"VSGBEGIN_{nonce}".encode()
    end = re.compile(rb"VSGEND_" + nonce.encode() + rb"_(\d+)")
    deadline = time.monotonic() + timeout
    with open(socket_path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(socket_path)
        except OSError as error:
            print(f"console.py: cannot connect to {socket_path}: {error}", file=sys.stderr)
            return 2
        with sock:
            sock.sendall(build_input(command, nonce))
            received = b""
            while True:
                match = end.search(received)
                if match and begin in received[: match.start()]:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    print(f"console.py: no answer within {timeout} s", file=sys.stderr)
                    return 124
                sock.settimeout(remaining)
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    print("console.py: console closed", file=sys.stderr)
                    return 2
                received += data
    output = received[received.index(begin) + len(begin): match.start()]
    # The tty turns \n into \r\n; drop the marker's own line ends around the output.
    text = output.replace(b"\r\n", b"\n").removeprefix(b"\n")
    sys.stdout.buffer.write(text)
    sys.stdout.flush()
    return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    words = args.command[1:] if args.command[:1] == ["--"] else args.command
    command = " ".join(words)
    if not command.strip():
        parser.error("no command")
    return run(args.socket, command, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
