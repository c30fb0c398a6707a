#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: tests/fuzz/corpus/<target>/<name>.bin.

fuzz_parse seeds are frames (Ethernet, VLAN, IPv4/IPv6 with options or extension headers,
TCP with options), built here with correct checksums. fuzz_engine seeds are step programs in
the input format documented at the top of fuzz_engine.cc: handshakes followed by in-order
data, guest ACKs, a full buffer, holes, many flows, closes, and damaged frames.

Run from anywhere: python3 tests/fuzz/make_corpus.py
"""

import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent

# --- frames ------------------------------------------------------------------------------

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_segment(src_ip, dst_ip, sport, dport, seq, ack, flags, window, options=b"",
                payload=b""):
    options += b"\0" * (-len(options) % 4)
    header_size = 20 + len(options)
    segment = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (header_size // 4) << 4,
                                    flags, window, 0, 0) + options + payload)
    length = len(segment)
    if len(src_ip) == 4:
        pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 6, length)
    else:
        pseudo = src_ip + dst_ip + struct.pack("!IxxxB", length, 6)
    struct.pack_into("!H", segment, 16, checksum(pseudo + bytes(segment)))
    return bytes(segment)


def ipv4(src, dst, payload, protocol=6, tos=0, options=b"", flags_fragment=0x4000):
    ihl = 5 + len(options) // 4
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, ihl * 4 + len(payload), 0x1234,
                                   flags_fragment, 64, protocol, 0, src, dst) + options)
    struct.pack_into("!H", header, 10, checksum(bytes(header)))
    return bytes(header) + payload


def ipv6(src, dst, next_header, payload, traffic_class=0, flow_label=0):
    first = (6 << 28) | (traffic_class << 20) | flow_label
    return struct.pack("!IHBB16s16s", first, len(payload), next_header, 64, src, dst) + payload


def ethernet(ether_type, payload, tags=()):
    frame = bytes.fromhex("02000a000002") + bytes.fromhex("02000a000001")
    for tpid, tci in tags:
        frame += struct.pack("!HH", tpid, tci)
    return frame + struct.pack("!H", ether_type) + payload


V4_SENDER = bytes([10, 0, 0, 1])
V4_GUEST = bytes([10, 0, 0, 2])
V6_SENDER = bytes.fromhex("fd000000000000000000000000000001")
V6_GUEST = bytes.fromhex("fd000000000000000000000000000002")

TS = lambda value, echo: b"\x01\x01\x08\x0a" + struct.pack("!II", value, echo)  # noqa: E731
SYN_OPTIONS = (b"\x02\x04\x05\xb4" + b"\x04\x02" + b"\x08\x0a" + struct.pack("!II", 100, 0) +
               b"\x01\x03\x03\x07")


def parse_seeds():
    data = bytes((0x61 + 7 * i) & 0xFF for i in range(100))
    seeds = {}
    seeds["ipv4_data_timestamps"] = ethernet(0x0800, ipv4(V4_SENDER, V4_GUEST, tcp_segment(
        V4_SENDER, V4_GUEST, 40000, 5201, 1001, 5001, ACK | PSH, 502, TS(101, 200), data)))
    seeds["ipv4_syn_options"] = ethernet(0x0800, ipv4(V4_SENDER, V4_GUEST, tcp_segment(
        V4_SENDER, V4_GUEST, 40000, 5201, 1000, 0, SYN | ECE | CWR, 64240, SYN_OPTIONS)))
    sack = b"\x01\x01\x05\x12" + struct.pack("!IIII", 2000, 3000, 4000, 5000)
    hop_by_hop = bytes([60, 0, 1, 4, 0, 0, 0, 0])
    dest_opts = bytes([6, 0, 1, 4, 0, 0, 0, 0])
    seeds["ipv6_extensions_sack"] = ethernet(0x86DD, ipv6(V6_GUEST, V6_SENDER, 0, hop_by_hop +
        dest_opts + tcp_segment(V6_GUEST, V6_SENDER, 5201, 40000, 5001, 1001, ACK, 500,
                                sack + TS(201, 101))))
    seeds["qinq_ipv4_ack"] = ethernet(0x0800, ipv4(V4_GUEST, V4_SENDER, tcp_segment(
        V4_GUEST, V4_SENDER, 5201, 40000, 5001, 2449, ACK, 498, TS(202, 102))),
        tags=((0x88A8, 10), (0x8100, 200)))
    seeds["ipv6_vlan_fragment"] = ethernet(0x86DD, ipv6(V6_SENDER, V6_GUEST, 44, bytes(
        [6, 0, 0, 1, 0xca, 0xfe, 0xf0, 0x0d]) + data[:40]), tags=((0x8100, 7),))
    seeds["ipv6_routing_segments_left"] = ethernet(0x86DD, ipv6(V6_SENDER, V6_GUEST, 43, bytes(
        [6, 0, 4, 1, 0, 0, 0, 0]) + tcp_segment(V6_SENDER, V6_GUEST, 40000, 5201, 1, 1, ACK,
                                                 100)))
    seeds["ipv4_options_ihl15"] = ethernet(0x0800, ipv4(V4_SENDER, V4_GUEST, tcp_segment(
        V4_SENDER, V4_GUEST, 40000, 5201, 1, 1, ACK, 100), options=b"\x01" * 40))
    seeds["ipv4_ce_urgent_mss_md5"] = ethernet(0x0800, ipv4(V4_SENDER, V4_GUEST, tcp_segment(
        V4_SENDER, V4_GUEST, 40000, 5201, 1, 1, ACK | URG, 100,
        bytes([19, 18]) + bytes(range(16)) + b"\x1e\x04\x00\x00", data[:10]), tos=0x03))
    seeds["tcp_zero_length_option"] = ethernet(0x0800, ipv4(V4_SENDER, V4_GUEST, tcp_segment(
        V4_SENDER, V4_GUEST, 40000, 5201, 1, 1, ACK, 100, b"\x02\x04\x05\xb4\xfe\x00")))
    padded = ethernet(0x0800, ipv4(V4_SENDER, V4_GUEST, tcp_segment(
        V4_SENDER, V4_GUEST, 40000, 5201, 1, 1, ACK, 100)))
    seeds["ipv4_ack_padded"] = padded + b"\0" * (60 - len(padded))
    return seeds


# --- engine programs ---------------------------------------------------------------------

TO_GUEST, FROM_GUEST, RUN, ADVANCE, EXPIRE, FORGET, RAW, MUTATED, ACCELERATION = range(9)
ABSOLUTE, NEXT, AHEAD, BEHIND = range(4)
OPT_TS, OPT_MSS, OPT_WS, OPT_SACK_OK, OPT_SACK, OPT_RAW, OPT_ECN, OPT_BAD = (
    1 << i for i in range(8))
US, MS, S, TEN_S = range(4)


def spec(tuple_bits=0, flags=ACK, seq_mode=NEXT, seq=0, ack_mode=NEXT, ack=0, window=65535,
         payload=0, ts_mode=None, mss=None, wscale=None, sack_ok=False, sack=None, raw=None,
         ecn=None, bad=None, wide_port=None):
    """A FrameSpec; ts_mode: None (no timestamps), an int (mode byte), or (tsval, tsecr)."""
    out = bytes([tuple_bits])
    if tuple_bits & 0x10:
        out += bytes([wide_port or 0])
    out += struct.pack("!BBIBIHH", flags, seq_mode, seq, ack_mode, ack, window, payload)
    bits = 0
    fields = b""
    if ts_mode is not None:
        bits |= OPT_TS
        fields += (bytes([1]) + struct.pack("!II", *ts_mode)) if isinstance(ts_mode, tuple) \
            else bytes([ts_mode & 0xFE])
    if mss is not None:
        bits |= OPT_MSS
        fields += struct.pack("!H", mss)
    if wscale is not None:
        bits |= OPT_WS
        fields += bytes([wscale])
    if sack_ok:
        bits |= OPT_SACK_OK
    if sack is not None:
        bits |= OPT_SACK
        fields += struct.pack("!II", *sack)
    if raw is not None:
        bits |= OPT_RAW
        fields += bytes([len(raw)]) + raw
    if ecn is not None:
        bits |= OPT_ECN
        fields += bytes([ecn])
    if bad is not None:
        bits |= OPT_BAD
        fields += bytes([bad])
    return out + bytes([bits]) + fields


def to_guest(**kw):
    return bytes([TO_GUEST]) + spec(**kw)


def from_guest(**kw):
    return bytes([FROM_GUEST]) + spec(**kw)


def advance(amount, unit):
    return bytes([ADVANCE]) + struct.pack("!HB", amount, unit)


def handshake(tuple_bits=0, wide_port=None, timestamps=True, wscale=7):
    ts = 0 if timestamps else None
    step_ts = 2 if timestamps else None  # TSval one tick after this side's last
    return (to_guest(tuple_bits=tuple_bits, wide_port=wide_port, flags=SYN, seq_mode=ABSOLUTE,
                     seq=1000, ack_mode=ABSOLUTE, window=64240, ts_mode=ts, mss=1460,
                     wscale=wscale, sack_ok=True) +
            from_guest(tuple_bits=tuple_bits, wide_port=wide_port, flags=SYN | ACK,
                       seq_mode=ABSOLUTE, seq=5000, window=65160, ts_mode=ts, mss=1460,
                       wscale=wscale, sack_ok=True) +
            to_guest(tuple_bits=tuple_bits, wide_port=wide_port, window=502, ts_mode=step_ts))


def data(tuple_bits=0, payload=1448, timestamps=True, **kw):
    return to_guest(tuple_bits=tuple_bits, flags=ACK | PSH, window=502, payload=payload,
                    ts_mode=2 if timestamps else None, **kw)


def guest_ack(tuple_bits=0, window=500, timestamps=True, **kw):
    return from_guest(tuple_bits=tuple_bits, window=window, ts_mode=2 if timestamps else None,
                      **kw)


def engine_seeds():
    seeds = {}
    seeds["v4_transfer"] = (handshake() + data() + data() + guest_ack() + advance(5, MS) +
                            data() + guest_ack() + guest_ack(window=520) +
                            bytes([RUN, 0]) + data())
    vlan_v6 = 0x40 | 0x01
    seeds["v6_vlan_transfer_no_timestamps"] = (
        handshake(vlan_v6, timestamps=False, wscale=2) + data(vlan_v6, timestamps=False) +
        data(vlan_v6, 1000, timestamps=False) + guest_ack(vlan_v6, timestamps=False))
    # Eight frames fill the guest's buffer (8 frames, 12000 bytes); the ninth is dropped.
    seeds["buffer_full"] = (handshake(timestamps=False, wscale=10) +
                            b"".join(data(timestamps=False) for _ in range(9)) +
                            bytes([RUN, 0]) + data(timestamps=False) +
                            guest_ack(timestamps=False))
    # 1001..2449 arrives, 2449..3897 is lost, 3897..5345 arrives: the guest sends a
    # duplicate ACK with a SACK block, the sender retransmits, the guest catches up, and
    # early ACKs resume.
    seeds["hole_then_recovery"] = (handshake() + data() +
                                   data(seq_mode=AHEAD, seq=1448) +
                                   guest_ack(ack_mode=ABSOLUTE, ack=2449) +
                                   guest_ack(ack_mode=ABSOLUTE, ack=2449, sack=(3897, 5345)) +
                                   data(seq_mode=ABSOLUTE, seq=2449) +
                                   guest_ack(ack_mode=ABSOLUTE, ack=5345) + data() + data())
    # The guest's ACK lags vSnoop's but opens its window: replaced by a window update.
    seeds["window_update"] = (handshake() + data() + data() +
                              guest_ack(ack_mode=ABSOLUTE, ack=2449, window=600) +
                              guest_ack(ack_mode=ABSOLUTE, ack=3897, window=600) +
                              guest_ack(ack_mode=ABSOLUTE, ack=3897, window=0) + data())
    many = b"".join(to_guest(tuple_bits=0x10 | (i & 1), wide_port=i, flags=SYN,
                             seq_mode=ABSOLUTE, seq=i, window=1000) + bytes([RUN, i & 1])
                    for i in range(80))
    seeds["many_flows_expire"] = (handshake() + many + advance(40, S) + bytes([EXPIRE]) +
                                  data() + advance(400, S) + bytes([EXPIRE]) +
                                  bytes([FORGET, 1]))
    seeds["fin_rst_close"] = (handshake() + data() +
                              to_guest(flags=ACK | FIN, window=502, ts_mode=2) +
                              guest_ack() + handshake(0x04) + data(0x04) +
                              to_guest(tuple_bits=0x04, flags=RST, ts_mode=2))
    seeds["damaged_frames"] = (
        handshake() + data(ecn=3) + data(bad=1) + data(bad=2) +
        data(raw=b"\xfe\x00") + data(raw=bytes([19, 6, 1, 2, 3, 4])) +
        # Data offset 3 (byte 46 of an untagged IPv4 frame), and 10 bytes cut off the end.
        bytes([MUTATED, 0]) + spec(flags=ACK, payload=100, window=502, ts_mode=2) +
        bytes([1]) + struct.pack("!HB", 46, 0x30) + bytes([10]) +
        bytes([RAW, 20]) + bytes(range(20)) + bytes([ACCELERATION, 1]) + data() +
        bytes([ACCELERATION, 0]) + data())
    # MPTCP offered in the SYN (MP_CAPABLE, kind 30) and a TCP-MD5 option (kind 19) in the
    # SYN-ACK: vSnoop leaves the flow to the endpoints.
    seeds["unsupported_options_handshake"] = (
        to_guest(flags=SYN, seq_mode=ABSOLUTE, seq=1000, window=64240, mss=1460,
                 raw=bytes([30, 4, 0x00, 0x81])) +
        from_guest(flags=SYN | ACK, seq_mode=ABSOLUTE, seq=5000, window=65160, mss=1460,
                   raw=bytes([19, 10]) + bytes(8)) +
        to_guest(window=502) + data(timestamps=False) + guest_ack(timestamps=False))
    return seeds


def write(target, seeds):
    directory = HERE / "corpus" / target
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.bin"):
        old.unlink()
    for name, content in seeds.items():
        (directory / f"{name}.bin").write_bytes(content)


if __name__ == "__main__":
    write("fuzz_parse", parse_seeds())
    write("fuzz_engine", engine_seeds())
