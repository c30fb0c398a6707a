#!/usr/bin/python3
"""Sends one TCP flow of a given size and reports how long it took and what the sender's
TCP saw.

    flowsend.py --to 10.77.0.11 --port 5001 --bytes 16777216 [--seed 7] [--cc cubic]

The payload is pseudorandom from --seed, so the receiver's SHA-256 can be checked against
the one printed here. The flow completion time runs from connect() to the receiver
closing its side after it has read every byte (the sink closes on EOF), so it includes
the delivery of the last byte. While the flow runs, TCP_INFO is sampled every 5 ms for the
sender's smoothed RTT, congestion window and retransmissions. Prints one JSON object; its
times t_connect and t_done are CLOCK_MONOTONIC seconds, comparable with other processes'.
"""
import argparse
import hashlib
import json
import random
import socket
import struct
import sys
import threading
import time

TCP_INFO_LEN = 232


def tcp_info(sock):
    b = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN)
    u32 = lambda off: struct.unpack_from("I", b, off)[0]
    return {
        "rtt_us": u32(68), "rttvar_us": u32(72), "cwnd": u32(80), "snd_mss": u32(16),
        "total_retrans": u32(100), "min_rtt_us": u32(148) if len(b) >= 152 else 0,
        "snd_wscale": b[6] & 0x0F, "rcv_wscale": b[6] >> 4,
    }


def connect(host, port, cc, timeout):
    deadline = time.monotonic() + timeout
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        s = socket.socket(family, socket.SOCK_STREAM)
        if cc:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
        try:
            t0 = time.monotonic()
            s.connect((host, port))
            return s, t0
        except (ConnectionRefusedError, OSError):
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--to", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cc", default="", help="congestion control (TCP_CONGESTION), e.g. cubic, reno")
    ap.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    a = ap.parse_args()

    data = random.Random(a.seed).randbytes(a.bytes)
    digest = hashlib.sha256(data).hexdigest()
    sock, t0 = connect(a.to, a.port, a.cc, a.timeout)
    local_port = sock.getsockname()[1]
    sock.settimeout(a.timeout)
    samples = []
    done = threading.Event()

    def sample():
        while not done.wait(0.005):
            try:
                samples.append(tcp_info(sock))
            except OSError:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    view = memoryview(data)
    for off in range(0, len(data), 1 << 20):
        sock.sendall(view[off:off + (1 << 20)])
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(4096):  # the sink sends nothing; EOF means it read everything
        pass
    t1 = time.monotonic()
    done.set()
    final = tcp_info(sock)
    sock.close()
    sampler.join()
    rtts = [s["rtt_us"] for s in samples if s["rtt_us"] > 0] or [final["rtt_us"]]
    seconds = t1 - t0
    ordered = sorted(rtts)
    print(json.dumps({
        "bytes": a.bytes, "sha256": digest, "seconds": seconds,
        "mbps": a.bytes * 8 / seconds / 1e6, "local_port": local_port,
        "t_connect": t0, "t_done": t1,
        "rtt_ms_mean": sum(rtts) / len(rtts) / 1000, "rtt_ms_max": max(rtts) / 1000,
        "rtt_ms_median": ordered[len(ordered) // 2] / 1000,
        "min_rtt_ms": final["min_rtt_us"] / 1000, "retransmits": final["total_retrans"],
        "cwnd_max": max([s["cwnd"] for s in samples] or [final["cwnd"]]),
        "snd_wscale": final["snd_wscale"], "samples": len(samples), "cc": a.cc or "default",
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
