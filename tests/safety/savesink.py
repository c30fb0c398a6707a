#!/usr/bin/python3
"""Accepts one TCP connection, writes every byte it reads to a file, and prints the count and
SHA-256 as one JSON line at EOF (the crafted-frame test compares them, and the file shows
where a stream went wrong).

    savesink.py --port 5001 --out FILE
"""
import argparse
import hashlib
import json
import socket
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("::", a.port))
    srv.listen(16)
    print(json.dumps({"listening": a.port}), flush=True)
    conn, peer = srv.accept()
    data = bytearray()
    while True:
        chunk = conn.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    conn.close()
    with open(a.out, "wb") as f:
        f.write(data)
    print(json.dumps({"peer": peer[0], "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
