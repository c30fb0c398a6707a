#!/usr/bin/python3
"""Self-test of the capture checks (checks.py): each check is run by tshark on small captures
built here with scapy, once on a capture it must accept and once on captures it must reject,
so a check that cannot fail (a wrong field name, a filter tshark silently reads as empty)
is caught before the safety matrix relies on it.

    checks_selftest.py [-v]

Needs tshark, editcap and mergecap (Debian's tshark package) and Debian's python3-scapy;
no root, no network. Exit code 0 when every case behaves as expected.
"""
import os
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402

from scapy.all import IP, TCP, Ether, IPv6, Raw, wrpcap  # noqa: E402
from scapy.all import raw as to_bytes  # noqa: E402

MOD = 1 << 32
REMOTE = "10.9.0.1"
GUEST = "10.9.0.2"
REMOTE6 = "fd09::1"
GUEST6 = "fd09::2"
RPORT = 40000
GPORT = 5001
REMOTE_ISN = 4_294_960_000  # wraps within the first few kilobytes: the checks must be wrap-safe
GUEST_ISN = 77_000
T0 = 1_700_000_000.0  # capture timestamps (seconds since the epoch)


def write_pcapng(path, frames):
    """A pcapng file the way vsnoopd's --pcap-out writes it: one Ethernet interface with
    nanosecond timestamps, one Enhanced Packet Block per frame with a comment option.
    `frames`: (timestamp seconds, frame bytes, comment) triples."""

    def block(block_type, body):
        body += b"\x00" * (-len(body) % 4)
        length = 12 + len(body)
        return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)

    def option(code, value):
        return struct.pack("<HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)

    with open(path, "wb") as f:
        f.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        # if_tsresol (option 9) = 9: nanoseconds.
        f.write(block(1, struct.pack("<HHI", 1, 0, 262144) + option(9, b"\x09") + option(0, b"")))
        for ts, frame, comment in frames:
            ns = int(round(ts * 1e9))
            body = struct.pack("<IIIII", 0, ns >> 32, ns & 0xFFFFFFFF, len(frame), len(frame)) + frame
            body += b"\x00" * (-len(body) % 4)
            body += option(1, comment.encode()) + option(0, b"")
            f.write(block(6, body))


class Flow:
    """Frames of one connection remote -> guest, with sequence numbers relative to the ISNs."""

    def __init__(self, ipv6=False, wscale=7, timestamps=True):
        self.ipv6 = ipv6
        self.wscale = wscale
        self.timestamps = timestamps
        self.remote = REMOTE6 if ipv6 else REMOTE
        self.guest = GUEST6 if ipv6 else GUEST

    def _l3(self, from_guest):
        src, dst = (self.guest, self.remote) if from_guest else (self.remote, self.guest)
        return IPv6(src=src, dst=dst) if self.ipv6 else IP(src=src, dst=dst, flags="DF")

    def _opts(self, tsval, tsecr):
        if not self.timestamps or tsval is None:
            return []
        return [("NOP", None), ("NOP", None), ("Timestamp", (tsval, tsecr or 0))]

    def from_remote(self, offset, length=0, flags="A", tsval=None, tsecr=0, syn_options=None):
        """A segment of the remote at relative offset `offset` (0 = the SYN)."""
        seq = (REMOTE_ISN + offset) % MOD
        opts = syn_options if syn_options is not None else self._opts(tsval, tsecr)
        ack = 0 if flags == "S" else (GUEST_ISN + 1) % MOD
        return to_bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / self._l3(False) /
                        TCP(sport=RPORT, dport=GPORT, flags=flags, seq=seq, ack=ack, window=502, options=opts) /
                        Raw(bytes((offset + i) & 0xFF for i in range(length))))

    def from_guest(self, acked, window, flags="A", tsval=None, tsecr=0, syn_options=None, chksum=None,
                   ip_chksum=None, length=0):
        """A segment of the guest acknowledging relative offset `acked` (ACK = ISN + acked)."""
        opts = syn_options if syn_options is not None else self._opts(tsval, tsecr)
        tcp_kw = {} if chksum is None else {"chksum": chksum}
        l3 = self._l3(True)
        if ip_chksum is not None:
            l3.chksum = ip_chksum
        seq = GUEST_ISN if "S" in flags else (GUEST_ISN + 1) % MOD
        return to_bytes(Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / l3 /
                        TCP(sport=GPORT, dport=RPORT, flags=flags, seq=seq, ack=(REMOTE_ISN + acked) % MOD,
                            window=window, options=opts, **tcp_kw) / Raw(b"g" * length))

    def syn(self, tsval=100):
        opts = [("MSS", 1000), ("SAckOK", b""), ("NOP", None), ("WScale", self.wscale)]
        if self.timestamps:
            opts.append(("Timestamp", (tsval, 0)))
        return self.from_remote(0, flags="S", syn_options=opts)

    def syn_ack(self, window=65535, tsval=5000, tsecr=100):
        opts = [("MSS", 1000), ("SAckOK", b""), ("NOP", None), ("WScale", self.wscale)]
        if self.timestamps:
            opts.append(("Timestamp", (tsval, tsecr)))
        return self.from_guest(1, window, flags="SA", syn_options=opts)


def pcap(path, frames):
    """A classic pcap (what tcpdump writes) of raw frames, 1 ms apart."""
    pkts = []
    for i, frame in enumerate(frames):
        p = Ether(frame)
        p.time = T0 + i * 0.001
        pkts.append(p)
    wrpcap(path, pkts)


def decisions(path, frames, start=T0 + 0.5):
    """vsnoopd's --pcap-out: (frame, comment) pairs, 1 ms apart."""
    write_pcapng(path, [(start + i * 0.001, f, c) for i, (f, c) in enumerate(frames)])


EARLY = "early-ack guest=veth:vm1"


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="vsnoop-checks-selftest-")
        self.dir = self.tmp.name
        checks._PACKETS.clear()

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)


class EarlyAcksCovered(Base):
    """Every byte an early ACK covers reached the VM; tshark's ack_lost_segment agrees."""

    def vm_capture(self, flow, segments):
        """The VM's eth0: handshake, then data segments (offset, length) from the remote."""
        frames = [flow.syn(), flow.syn_ack(), flow.from_remote(1)]
        frames += [flow.from_remote(off, n, tsval=200 + off) for off, n in segments]
        pcap(self.path("vm.pcap"), frames)
        return self.path("vm.pcap")

    def test_ack_up_to_the_last_byte_received_passes(self):
        flow = Flow()
        vm = self.vm_capture(flow, [(1, 1000), (1001, 1000), (2001, 1000)])
        decisions(self.path("d.pcapng"), [(flow.from_guest(1001, 500), EARLY),
                                          (flow.from_guest(3001, 500), EARLY)])
        figures, problems = checks.early_acks_covered(self.path("d.pcapng"), vm)
        self.assertEqual(problems, [])
        self.assertEqual(figures["generated_acks_checked"], 2)
        self.assertEqual(figures["min_margin_bytes"], 0)
        self.assertEqual(figures["tshark_ack_lost_segment_vm_side"], 0)

    def test_ack_beyond_the_data_received_fails_both_ways(self):
        flow = Flow()
        vm = self.vm_capture(flow, [(1, 1000), (1001, 1000)])
        decisions(self.path("d.pcapng"), [(flow.from_guest(3001, 500), EARLY)])
        figures, problems = checks.early_acks_covered(self.path("d.pcapng"), vm)
        self.assertEqual(figures["min_margin_bytes"], -1000)
        self.assertTrue(any("acknowledges relative byte 3001" in p for p in problems), problems)
        # The independent dissector sees it too.
        self.assertGreaterEqual(figures["tshark_ack_lost_segment_vm_side"], 1)
        self.assertTrue(any(p.startswith("tshark:") for p in problems), problems)

    def test_ack_across_a_hole_fails(self):
        # The VM got bytes 1..1000 and 2001..3000, not 1001..2000: an ACK for 3001 covers
        # a byte the VM never received although the highest byte seen is 3000 (tshark
        # alone does not flag this; the interval check must).
        flow = Flow()
        vm = self.vm_capture(flow, [(1, 1000), (2001, 1000)])
        decisions(self.path("d.pcapng"), [(flow.from_guest(3001, 500), EARLY)])
        _, problems = checks.early_acks_covered(self.path("d.pcapng"), vm)
        self.assertTrue(any("received only up to 1001" in p for p in problems), problems)

    def test_out_of_order_arrival_that_fills_the_hole_passes(self):
        flow = Flow()
        vm = self.vm_capture(flow, [(2001, 1000), (1, 1000), (1001, 1000)])
        decisions(self.path("d.pcapng"), [(flow.from_guest(3001, 500), EARLY)])
        _, problems = checks.early_acks_covered(self.path("d.pcapng"), vm)
        self.assertEqual(problems, [])

    def test_suppressed_guest_acks_are_not_in_question(self):
        # A suppressed frame is the guest's own ACK, not something vSnoop sent.
        flow = Flow()
        vm = self.vm_capture(flow, [(1, 1000)])
        decisions(self.path("d.pcapng"), [(flow.from_guest(1001, 500), EARLY),
                                          (flow.from_guest(9001, 500), "suppressed guest=veth:vm1")])
        figures, problems = checks.early_acks_covered(self.path("d.pcapng"), vm)
        self.assertEqual(problems, [])
        self.assertEqual(figures["generated_acks_checked"], 1)

    def test_ack_for_a_connection_the_vm_never_saw_fails(self):
        flow = Flow()
        vm = self.path("vm.pcap")
        pcap(vm, [flow.from_remote(1, 1000)])  # no SYN in the VM capture
        decisions(self.path("d.pcapng"), [(flow.from_guest(1001, 500), EARLY)])
        _, problems = checks.early_acks_covered(self.path("d.pcapng"), vm)
        self.assertTrue(any("whose SYN the VM capture does not hold" in p for p in problems), problems)

    def test_ipv6(self):
        flow = Flow(ipv6=True)
        vm = self.vm_capture(flow, [(1, 1000), (1001, 1000)])
        decisions(self.path("d.pcapng"), [(flow.from_guest(2001, 500), EARLY)])
        self.assertEqual(checks.early_acks_covered(self.path("d.pcapng"), vm)[1], [])
        decisions(self.path("d2.pcapng"), [(flow.from_guest(2501, 500), EARLY)])
        _, problems = checks.early_acks_covered(self.path("d2.pcapng"), vm)
        self.assertTrue(problems)

    def test_fin_counts_as_one_sequence_number(self):
        flow = Flow()
        vm = self.vm_capture(flow, [(1, 1000)])
        frames = [flow.syn(), flow.syn_ack(), flow.from_remote(1), flow.from_remote(1, 1000),
                  flow.from_remote(1001, 0, flags="FA")]
        pcap(vm, frames)
        decisions(self.path("d.pcapng"), [(flow.from_guest(1002, 500), EARLY)])
        self.assertEqual(checks.early_acks_covered(self.path("d.pcapng"), vm)[1], [])
        decisions(self.path("d2.pcapng"), [(flow.from_guest(1003, 500), EARLY)])
        self.assertTrue(checks.early_acks_covered(self.path("d2.pcapng"), vm)[1])


class GeneratedChecksums(Base):
    def test_valid_frames_pass(self):
        flow = Flow()
        flow6 = Flow(ipv6=True)
        decisions(self.path("d.pcapng"), [(flow.from_guest(1001, 500), EARLY),
                                          (flow6.from_guest(1001, 500), EARLY),
                                          (flow.from_guest(2001, 600), "window-update guest=veth:vm1")])
        figures, problems = checks.generated_checksums(self.path("d.pcapng"))
        self.assertEqual(problems, [])
        self.assertEqual(figures, {"generated_frames": 3, "bad_checksums": 0})

    def test_bad_tcp_checksum_fails(self):
        flow = Flow()
        good = flow.from_guest(1001, 500)
        bad = flow.from_guest(1001, 500, chksum=(TCP(good[14 + 20:]).chksum ^ 0x0101))
        decisions(self.path("d.pcapng"), [(good, EARLY), (bad, EARLY)])
        figures, problems = checks.generated_checksums(self.path("d.pcapng"))
        self.assertEqual(figures["bad_checksums"], 1)
        self.assertTrue(any("#2" in p for p in problems), problems)

    def test_bad_tcp_checksum_over_ipv6_fails(self):
        flow = Flow(ipv6=True)
        decisions(self.path("d.pcapng"), [(flow.from_guest(1001, 500, chksum=0x1234), EARLY)])
        self.assertEqual(checks.generated_checksums(self.path("d.pcapng"))[0]["bad_checksums"], 1)

    def test_bad_ip_checksum_fails(self):
        flow = Flow()
        decisions(self.path("d.pcapng"), [(flow.from_guest(1001, 500, ip_chksum=0x4242), EARLY)])
        figures, problems = checks.generated_checksums(self.path("d.pcapng"))
        self.assertEqual(figures["bad_checksums"], 1)
        self.assertTrue(problems)

    def test_truncated_frame_fails(self):
        flow = Flow()
        decisions(self.path("d.pcapng"), [(flow.from_guest(1001, 500)[:14 + 20 + 10], EARLY)])
        self.assertEqual(checks.generated_checksums(self.path("d.pcapng"))[0]["bad_checksums"], 1)

    def test_forwarded_window_limited_frames_with_partial_checksums_are_not_judged(self):
        # A guest frame forwarded with its window cut: with checksum offload its checksum
        # field holds only the pseudo-header's sum.
        flow = Flow()
        decisions(self.path("d.pcapng"), [(flow.from_guest(1001, 500, chksum=0x1234),
                                           "window-limited guest=veth:vm1"),
                                          (flow.from_guest(1001, 500), EARLY)])
        self.assertEqual(checks.generated_checksums(self.path("d.pcapng")),
                         ({"generated_frames": 1, "bad_checksums": 0}, []))

    def test_suppressed_frames_are_not_vsnoops_to_judge(self):
        flow = Flow()
        decisions(self.path("d.pcapng"), [(flow.from_guest(1001, 500, chksum=0x1234), "suppressed guest=veth:vm1")])
        self.assertEqual(checks.generated_checksums(self.path("d.pcapng")),
                         ({"generated_frames": 0, "bad_checksums": 0}, []))


class WindowNeverShrinks(Base):
    """The right edge (ACK + window << scale) toward the sender never moves left."""

    def run_check(self, flow, acks, generated=()):
        up = [flow.syn(), flow.syn_ack(window=64000)] + list(acks)
        pcap(self.path("up.pcap"), up)
        decisions(self.path("d.pcapng"), [(g, EARLY) for g in generated])
        return checks.window_never_shrinks(self.path("up.pcap"), self.path("d.pcapng"), flow.remote)

    def test_edges_that_only_advance_pass(self):
        flow = Flow(wscale=7)
        figures, problems = self.run_check(flow, [flow.from_guest(1001, 500), flow.from_guest(2001, 500),
                                                  flow.from_guest(2001, 600), flow.from_guest(70001, 100)])
        self.assertEqual(problems, [])
        self.assertEqual(figures["acks_checked"], 4)

    def test_a_retreat_of_one_scale_unit_fails(self):
        flow = Flow(wscale=7)
        early = flow.from_guest(3001, 500)
        # Edge 3001 + 500*128 = 67001, then 3001 + 499*128: 128 bytes to the left.
        figures, problems = self.run_check(flow, [early, flow.from_guest(3001, 499)], generated=[early])
        self.assertEqual(figures["worst_retreat_bytes"], 128)
        self.assertEqual(len(problems), 1)
        self.assertIn("from a vsnoop segment", problems[0])
        self.assertIn("guest ACK", problems[0])

    def test_a_retreat_smaller_than_the_scale_unit_is_rounding(self):
        # RFC 7323 §2.4: the receiver may round its window down to a multiple of 2^scale.
        flow = Flow(wscale=7)
        _, problems = self.run_check(flow, [flow.from_guest(3001, 500), flow.from_guest(3101, 499)])
        self.assertEqual(problems, [])

    def test_an_old_ack_does_not_count(self):
        # RFC 9293 §3.10.7.4: a segment whose ACK is older than SND.UNA does not update the window.
        flow = Flow(wscale=7)
        _, problems = self.run_check(flow, [flow.from_guest(5001, 500), flow.from_guest(3001, 1)])
        self.assertEqual(problems, [])

    def test_the_syn_ack_window_is_not_scaled(self):
        # The SYN-ACK's 64000 bytes, then an ACK whose scaled window ends 63999 bytes further
        # on: a retreat of 2 bytes (within rounding); then one of 64000 - 1 - 128*100.
        flow = Flow(wscale=7)
        _, problems = self.run_check(flow, [flow.from_guest(1, 500)])
        self.assertEqual(problems, [])
        _, problems = self.run_check(flow, [flow.from_guest(1, 100)])
        self.assertEqual(len(problems), 1)

    def test_without_window_scaling(self):
        flow = Flow(wscale=0, timestamps=False)
        up = [flow.syn_ack(window=64000)]
        # With no window scale option at all, the shift is 0.
        up[0] = flow.from_guest(1, 64000, flags="SA", syn_options=[("MSS", 1000)])
        pcap(self.path("up.pcap"), [flow.syn()] + up + [flow.from_guest(1001, 63000), flow.from_guest(1001, 62999)])
        decisions(self.path("d.pcapng"), [])
        figures, problems = checks.window_never_shrinks(self.path("up.pcap"), self.path("d.pcapng"), flow.remote)
        self.assertEqual(figures["worst_retreat_bytes"], 1)
        self.assertEqual(len(problems), 1)

    def test_wrap_of_the_sequence_space(self):
        # REMOTE_ISN + 70001 wraps past 2^32: an edge beyond the wrap is further right.
        flow = Flow(wscale=2)
        _, problems = self.run_check(flow, [flow.from_guest(1001, 20000), flow.from_guest(9001, 20000)])
        self.assertEqual(problems, [])
        self.assertLess((REMOTE_ISN + 9001) % MOD, REMOTE_ISN)  # the test does cross the wrap


class TimestampsMonotonic(Base):
    def run_check(self, flow, to_sender, sender_tsvals, generated, synack_tsval=5000):
        snd = [flow.from_remote(1 + 1000 * i, 1000, tsval=v) for i, v in enumerate(sender_tsvals)]
        pcap(self.path("snd.pcap"), [flow.syn(), flow.syn_ack(tsval=synack_tsval)] + snd)
        pcap(self.path("up.pcap"), [flow.syn(), flow.syn_ack(tsval=synack_tsval)] + to_sender)
        decisions(self.path("d.pcapng"), [(g, EARLY) for g in generated])
        return checks.timestamps_monotonic(self.path("up.pcap"), self.path("snd.pcap"),
                                           self.path("d.pcapng"), flow.remote)

    def test_monotonic_tsvals_and_true_echoes_pass(self):
        flow = Flow()
        early = flow.from_guest(1001, 500, tsval=5001, tsecr=300)
        figures, problems = self.run_check(flow, [early, flow.from_guest(2001, 500, tsval=5001, tsecr=301),
                                                  flow.from_guest(2001, 500, tsval=5002, tsecr=301)],
                                           [300, 301], [early])
        self.assertEqual(problems, [])
        self.assertEqual(figures["tsvals_checked"], 4)  # the SYN-ACK's TSval too
        self.assertEqual(figures["tsecr_checked"], 1)

    def test_tsval_going_back_fails(self):
        flow = Flow()
        _, problems = self.run_check(flow, [flow.from_guest(1001, 500, tsval=5003, tsecr=300),
                                            flow.from_guest(2001, 500, tsval=5002, tsecr=301)], [300, 301], [])
        self.assertEqual(len(problems), 1)
        self.assertIn("from 5003 to 5002", problems[0])

    def test_tsval_wrapping_past_2_32_is_monotonic(self):
        flow = Flow()
        _, problems = self.run_check(flow, [flow.from_guest(1001, 500, tsval=MOD - 2, tsecr=300),
                                            flow.from_guest(2001, 500, tsval=3, tsecr=301)], [300, 301], [],
                                       synack_tsval=MOD - 5)
        self.assertEqual(problems, [])

    def test_echo_of_a_tsval_the_sender_never_sent_fails(self):
        flow = Flow()
        early = flow.from_guest(1001, 500, tsval=5001, tsecr=999)
        _, problems = self.run_check(flow, [early], [300, 301], [early])
        self.assertEqual(len(problems), 1)
        self.assertIn("TSecr 999", problems[0])


class SenderSideClean(Base):
    def test_acks_for_sent_data_pass(self):
        flow = Flow()
        pcap(self.path("snd.pcap"), [flow.syn(), flow.syn_ack(), flow.from_remote(1),
                                     flow.from_remote(1, 1000, tsval=300), flow.from_guest(1001, 500, tsval=5001,
                                                                                       tsecr=300)])
        self.assertEqual(checks.sender_side_clean(self.path("snd.pcap")),
                         ({"tshark_ack_lost_segment_sender_side": 0}, []))

    def test_ack_for_data_never_sent_fails(self):
        flow = Flow()
        pcap(self.path("snd.pcap"), [flow.syn(), flow.syn_ack(), flow.from_remote(1),
                                     flow.from_remote(1, 1000, tsval=300), flow.from_guest(5001, 500, tsval=5001,
                                                                                       tsecr=300)])
        figures, problems = checks.sender_side_clean(self.path("snd.pcap"))
        self.assertEqual(figures["tshark_ack_lost_segment_sender_side"], 1)
        self.assertEqual(len(problems), 1)


class AllChecks(Base):
    """The five checks over one case directory, as run_matrix.py calls them."""

    def write_case(self, early_ack_to):
        flow = Flow()
        data = [flow.from_remote(1 + 1000 * i, 1000, tsval=300 + i) for i in range(4)]
        handshake = [flow.syn(), flow.syn_ack(), flow.from_remote(1, tsval=299)]
        early = flow.from_guest(early_ack_to, 500, tsval=5001, tsecr=303)
        guest_ack = flow.from_guest(4001, 500, tsval=5002, tsecr=303)
        pcap(self.path("snd.pcap"), handshake + data + [early])
        pcap(self.path("up.pcap"), [handshake[1], early])
        pcap(self.path("vm.pcap"), handshake + data + [guest_ack])
        decisions(self.path("decisions.pcapng"), [(early, EARLY), (guest_ack, "suppressed guest=veth:vm1")])
        return flow

    def test_a_clean_case_passes(self):
        flow = self.write_case(4001)
        figures, problems = checks.all_checks(self.dir, flow.remote)
        self.assertEqual(problems, [])
        self.assertEqual(figures["generated_acks_checked"], 1)
        self.assertEqual(figures["generated_frames"], 1)

    def test_an_unsafe_early_ack_is_reported(self):
        flow = self.write_case(5001)
        _, problems = checks.all_checks(self.dir, flow.remote)
        self.assertTrue(any(p.startswith("early_acks_covered:") for p in problems), problems)
        self.assertTrue(any(p.startswith("sender_side_clean:") for p in problems), problems)


if __name__ == "__main__":
    unittest.main(verbosity=2 if "-v" in sys.argv else 1)
