#!/usr/bin/python3
"""Receives TCP flows and prints, for each, its size and SHA-256 as one JSON line; closes
each connection once the sender has finished (EOF), so the sender can time the flow. With
--out, every byte read is also written to FILE (the crafted-frame test shows there where a
stream went wrong).

    flowsink.py --port 5001 [--count N] [--out FILE]
"""
import argparse
import hashlib
import json
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=0, help="exit after N flows (0: run until killed)")
    ap.add_argument("--out", help="write the bytes read to this file (the flows one after another)")
    a = ap.parse_args()
    out = open(a.out, "wb") if a.out else None
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("::", a.port))
    srv.listen(16)
    print(json.dumps({"listening": a.port}), flush=True)
    served = 0
    buf = bytearray(1 << 20)
    while a.count == 0 or served < a.count:
        conn, peer = srv.accept()
        t0 = time.monotonic()
        h = hashlib.sha256()
        total = 0
        while True:
            n = conn.recv_into(buf)
            if n == 0:
                break
            h.update(memoryview(buf)[:n])
            if out:
                out.write(memoryview(buf)[:n])
            total += n
        conn.close()
        if out:
            out.flush()
        served += 1
        print(json.dumps({"peer": peer[0], "bytes": total, "sha256": h.hexdigest(),
                          "seconds": time.monotonic() - t0}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
