#!/usr/bin/python3
"""Sends a tiny Ethernet frame every INTERVAL microseconds that vsnoopd reads on its uplink
and discards (source and destination are this interface's own address, which vsnoopd has
learnt on the uplink, so the frame goes nowhere): each one makes vsnoopd run a step of its
loop, in which every emulated VM's schedule is brought up to date.

Why: a frame that one VM sends to another VM that is blocked (descheduled with nothing to
do) is placed in the receiver's buffer, but vsnoopd does not wake the receiver until its next
loop step, and when nothing else happens that step comes only at its housekeeping deadline
(up to 1 s later). The ticks bound that delay to INTERVAL. See docs/applications.md.

    tick.py IFNAME INTERVAL_US
"""
import socket
import sys
import time


def main():
    ifname, interval = sys.argv[1], int(sys.argv[2]) / 1e6
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    mac = s.getsockname()[4][:6]
    frame = mac + mac + b"\x88\xb5" + bytes(46)  # EtherType 0x88B5: local experimental
    next_at = time.monotonic()
    while True:
        s.send(frame)
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()


if __name__ == "__main__":
    sys.exit(main())
