#!/usr/bin/python3
"""Sends one spurious retransmission into a running TCP flow, as a sender whose loss probe
or retransmission timer fired too early would: watches the flow's segments to DST:PORT
leave IFACE from its SYN (or its first data segment seen) on, and once one starts AFTER
bytes or more into the stream, sends a copy of that segment's first 100 payload bytes
(same sequence number, ACK and options, valid checksums). Prints the copy's relative
sequence number and length.

    inject_duplicate.py IFACE DST PORT AFTER       (run in the sender's network namespace)
"""
import sys

from scapy.all import IP, IPv6, TCP, Ether, Raw, conf, sendp, sniff


def main():
    iface, dst, port, after = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    conf.verb = 0
    host = f"ip6 dst host {dst}" if ":" in dst else f"dst host {dst}"
    state = {"isn": None, "segment": None}

    def take(p):
        tcp = p[TCP]
        if "S" in tcp.flags:
            state["isn"] = tcp.seq
        elif state["isn"] is None and len(tcp.payload) > 0:
            # The SYN went by before the sniffer was ready (a loaded machine): count from
            # the first data segment seen instead, a few segments off at most.
            state["isn"] = (tcp.seq - 1) % (1 << 32)
        if state["isn"] is not None and "S" not in tcp.flags and len(tcp.payload) > 0 and \
                (tcp.seq - state["isn"]) % (1 << 32) >= after:
            state["segment"] = p
        return state["segment"] is not None

    sniff(iface=iface, filter=f"tcp and {host} and dst port {port}", stop_filter=take, store=False,
          timeout=120)
    original = state["segment"]
    if original is None:
        print("no data segment that far into a flow", file=sys.stderr)
        return 1
    tcp = original[TCP]
    payload = bytes(tcp.payload)[:100]
    if IP in original:
        ip = IP(src=original[IP].src, dst=original[IP].dst, tos=original[IP].tos,
                ttl=original[IP].ttl, flags="DF")
    else:
        ip = IPv6(src=original[IPv6].src, dst=original[IPv6].dst, hlim=original[IPv6].hlim)
    # Checksums and lengths left unset: scapy computes them (the original's, taken before
    # segmentation offload, are partial).
    copy = (Ether(src=original[Ether].src, dst=original[Ether].dst) / ip /
            TCP(sport=tcp.sport, dport=tcp.dport, seq=tcp.seq, ack=tcp.ack, flags="A",
                window=tcp.window, options=tcp.options) / Raw(payload))
    sendp(copy, iface=iface)
    print((tcp.seq - state["isn"]) % (1 << 32), len(payload), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
