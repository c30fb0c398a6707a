#!/usr/bin/python3
"""Sends a pseudorandom TCP stream until a stop file appears, then closes and prints the
byte count and SHA-256 as one JSON line (the receiver's must match).

    streamsend.py --to ADDR --port 5001 --seed 5 --stop-file PATH [--cc cubic]
"""
import argparse
import hashlib
import json
import os
import random
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--to", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--cc", default="cubic")
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    family = socket.AF_INET6 if ":" in a.to else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, a.cc.encode())
    s.settimeout(a.timeout)
    s.connect((a.to, a.port))
    print(json.dumps({"connected": True}), flush=True)
    rng = random.Random(a.seed)
    digest = hashlib.sha256()
    total = 0
    t0 = time.monotonic()
    while not os.path.exists(a.stop_file):
        chunk = rng.randbytes(1 << 16)
        s.sendall(chunk)
        digest.update(chunk)
        total += len(chunk)
    s.shutdown(socket.SHUT_WR)
    while s.recv(4096):
        pass
    s.close()
    seconds = time.monotonic() - t0
    print(json.dumps({"bytes": total, "sha256": digest.hexdigest(), "seconds": seconds,
                      "mbps": total * 8 / seconds / 1e6}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
