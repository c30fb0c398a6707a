"""vsnoopd on real traffic: TCP flows from a sender namespace through vsnoopd to VM
namespaces, each checked byte for byte (the sink's SHA-256 against the sender's): 1, 16 and
64 MB, vSnoop on and off, one VM on the core (k = 1) and three (k = 3, emulated 30 ms
slices), IPv4 and IPv6, two VMs receiving at the same time, and a buffer far smaller than
the VM's window.

For one flow of each configuration, tcpdump (-s 128) captures the sender's interface,
vsnoopd's uplink (where it receives) and the VM's interface. The VM must have received
exactly the data segments vsnoopd received, in that order, each once: vsnoopd forwards GSO
frames whole, so the lists of (sequence number, length) match one for one. The only frames
allowed to be missing are ones vsnoopd dropped because the VM's buffer was full (counted in
frames_dropped_no_room, never acknowledged; the sender retransmits them, and the VM sees
the retransmission where it came). End to end, the VM must receive nothing the sender did
not send and nothing more often than sent; the order is the sender's unless the kernel's
veth reordered frames before vsnoopd received them (it does, rarely, under load: reported
as a figure, and not vsnoopd's doing). Afterwards the VM's TCP stack must report no drops
(receive queue, backlog, zero window, out-of-order queue), and the host-side veth no
transmit drops.

The 64 MB flows run in the optimised build only (netnstest.sanitized()); the sanitizer
build runs the 1 and 16 MB flows. A known problem has a test that is skipped unless
VSNOOP_RUN_KNOWN_BUGS=1 (see its comment).
"""
import collections
import os
import threading
import time
import unittest

import netnstest
from netnstest import K1, K3, VsnoopdTestCase, figure, sender_address, vm_address

netnstest.require_environment()

from vsnooplab.capture import Capture, tcp_data_segments, tshark_fields  # noqa: E402
from vsnooplab.transfer import Sink, checked_flow  # noqa: E402

MB = 1 << 20
SMALL_BUFFER = 128 << 10  # bytes: a buffer far smaller than the VM's receive window


class Transfers(VsnoopdTestCase):
    def run_flows(self, mode, sched, sizes, capture=(), ipv6=False, buffer_bytes=None):
        """Runs one checked flow per size through a fresh host; flows of the sizes in
        `capture` are captured and compared (check_delivery). Returns the host."""
        h = self.host(mode, sched, ipv6=ipv6, buffer_bytes=buffer_bytes)
        sink = Sink(self.topo, h.vms[0])
        to = vm_address(1, ipv6)
        label = f"{mode} k={sched['vms']}{' ipv6' if ipv6 else ''}"
        for n, size in enumerate(sizes):
            known = netnstest.flow_keys(h.vsnoopd)
            dropped_before = netnstest.guest_counters(h.vsnoopd)["frames_dropped_no_room"]
            captures = []
            if size in capture:
                captures = [Capture(self.topo, ns, ifname,
                                    os.path.join(self.tmp, f"{name}{n}.pcap"))
                            for name, ns, ifname in (("sender", h.sender, "eth0"),
                                                     ("uplink", h.host, "up0"),
                                                     ("vm", h.vms[0], "eth0"))]
            try:
                sent, _ = checked_flow(h.sender, sink, to, size, seed=n + 1)
            finally:
                if captures:
                    time.sleep(0.3)  # let tcpdump write the last frames it was handed
                    for c in captures:
                        c.stop()
            flow = netnstest.new_flow(h.vsnoopd, known)
            counters = netnstest.guest_counters(h.vsnoopd)
            dropped = counters["frames_dropped_no_room"] - dropped_before
            figure(f"{label} {size // MB} MB: {sent['mbps']:.0f} Mbit/s, sender RTT mean "
                   f"{sent['rtt_ms_mean']:.1f} ms, {sent['retransmits']} retransmitted, "
                   f"early ACKs {flow['stats']['early_acks']}, suppressed "
                   f"{flow['stats']['guest_acks_suppressed']}, window updates "
                   f"{flow['stats']['window_updates']}, buffer drops {dropped}")
            self.check_flow(mode, flow, size, ipv6)
            if captures:
                self.check_delivery(captures, ipv6, dropped)
        self.assertNoVmDrops(h)
        self.assertEqual(netnstest.guest_counters(h.vsnoopd)["frames_dropped_unoffload"], 0)
        return h

    def check_flow(self, mode, flow, size, ipv6):
        stats = flow["stats"]
        self.assertEqual(flow["guest_address"], netnstest.endpoint(vm_address(1, ipv6), 5001))
        remote_host = flow["remote"].rsplit(":", 1)[0]
        self.assertEqual(remote_host, netnstest.endpoint(sender_address(ipv6), 0).rsplit(":", 1)[0])
        self.assertGreaterEqual(stats["payload_bytes_to_guest"], size)
        if mode == "vsnoop":
            self.assertGreater(stats["early_acks"], 0, flow)
            self.assertGreater(stats["early_acked_bytes"], 0, flow)
            self.assertLessEqual(stats["early_acked_bytes"], size, flow)
        else:
            self.assertEqual((stats["early_acks"], stats["guest_acks_suppressed"],
                              stats["window_updates"]), (0, 0, 0), flow)

    def check_delivery(self, captures, ipv6, dropped, vm=1):
        """captures: at the sender's eth0, at vsnoopd's uplink (up0, where vsnoopd receives)
        and at VM number vm's eth0."""
        for c in captures:
            self.assertTrue(c.complete, f"capture {c.path} incomplete: {c.captured} written, "
                            f"{c.received} taken by the filter, {c.dropped} dropped")
        src, dst = sender_address(ipv6), vm_address(vm, ipv6)
        sent, at_uplink, received = (tcp_data_segments(c.path, src, dst) for c in captures)
        self.assertGreater(len(sent), 0)
        # vsnoopd's part: the VM gets exactly what vsnoopd received, in the order received,
        # each frame once, less only frames dropped for want of room.
        missing = netnstest.delivery_gaps(at_uplink, received)
        self.assertLessEqual(len(missing), dropped,
                             f"{len(missing)} frames vsnoopd received never reached the VM, "
                             f"but it dropped only {dropped} for want of room: {missing[:5]}")
        if dropped == 0:
            self.assertEqual(at_uplink, received)
        # End to end: nothing the sender did not send, nothing more often than it was sent.
        excess = collections.Counter(received) - collections.Counter(sent)
        self.assertEqual(dict(excess), {}, "the VM received frames the sender did not send "
                         "(or more copies than it sent)")
        # And in the sender's order, unless the kernel reordered frames before vsnoopd
        # received them (the veth from the sender hands frames to the backlog queue of the
        # sending CPU; a sender that moves between CPUs can overtake itself): that is the
        # network's doing, which vsnoopd passes on as it must, and it is only reported.
        try:
            netnstest.delivery_gaps(sent, at_uplink)
            upstream = "in order"
        except AssertionError as e:
            upstream = f"reordered by the kernel before vsnoopd: {str(e).split(';')[0]}"
        figure(f"captured {len(sent)} data frames sent, {len(at_uplink)} at vsnoopd's uplink "
               f"({upstream}), {len(received)} received by the VM, largest "
               f"{max(n for _, n in sent)} bytes")

    def test_vsnoop_on_k1(self):
        self.run_flows("vsnoop", K1, [1 * MB, 16 * MB], capture=[16 * MB])

    def test_vsnoop_on_k3(self):
        self.run_flows("vsnoop", K3, [1 * MB, 16 * MB], capture=[16 * MB])

    def test_vsnoop_off_k1(self):
        self.run_flows("vsnoop-off", K1, [1 * MB, 16 * MB], capture=[16 * MB])

    def test_vsnoop_off_k3(self):
        self.run_flows("vsnoop-off", K3, [1 * MB, 16 * MB], capture=[16 * MB])

    @unittest.skipIf(netnstest.sanitized(), "64 MB through a sanitizer build: too slow for CI")
    def test_64mb_vsnoop_on_k3(self):
        self.run_flows("vsnoop", K3, [64 * MB], capture=[64 * MB])

    @unittest.skipIf(netnstest.sanitized(), "64 MB through a sanitizer build: too slow for CI")
    def test_64mb_vsnoop_off_k3(self):
        self.run_flows("vsnoop-off", K3, [64 * MB], capture=[64 * MB])

    def test_small_buffer_vsnoop_on_k3(self):
        # A 128 KiB buffer, much less than the VM's receive window: vSnoop shows the sender
        # no more room than the buffer has (the buffer-aware window), and early ACKs stop
        # while the buffer is full. Each flow must still arrive whole and in order, and
        # nothing vsnoopd dropped for want of room may have been acknowledged (else the
        # sender would never resend it and the flow would not complete). Drops are allowed
        # here: they should not happen, but a spurious retransmission under load opens the
        # window beyond the buffer (the known bug of
        # test_one_spurious_retransmission_keeps_the_window_within_the_buffer).
        h = self.run_flows("vsnoop", K3, [4 * MB], capture=[4 * MB], buffer_bytes=SMALL_BUFFER)
        guest = h.vsnoopd.stats()["guests"][0]
        self.assertEqual(guest["buffer"]["max_bytes"], SMALL_BUFFER)
        self.assertGreater(guest["counters"]["early_acks"], 0)

    def test_small_buffer_vsnoop_off_k3(self):
        # The same without vSnoop: the VM's own window invites more than the buffer holds,
        # so frames may be dropped for want of room (never acknowledged); the sender
        # retransmits them and the VM still receives everything once, in the sender's order.
        self.run_flows("vsnoop-off", K3, [4 * MB], capture=[4 * MB], buffer_bytes=SMALL_BUFFER)

    def test_two_vms_at_once(self):
        # Two VM namespaces behind one vsnoopd, each on its own emulated k = 3 schedule,
        # receive a 16 MB flow each at the same time: both arrive intact, each VM receives
        # exactly its own flow's frames in the sender's order (none of the other's), and
        # each guest's own counters show its early ACKs.
        h = self.host("vsnoop", K3, guests=2)
        size = 16 * MB
        sinks = [Sink(self.topo, vm) for vm in h.vms]
        captures = [Capture(self.topo, ns, ifname, os.path.join(self.tmp, f"{name}.pcap"))
                    for name, ns, ifname in (("sender", h.sender, "eth0"),
                                             ("uplink", h.host, "up0"),
                                             ("vm1", h.vms[0], "eth0"),
                                             ("vm2", h.vms[1], "eth0"))]
        results, errors = {}, []

        def flow(vm):
            try:
                results[vm] = checked_flow(h.sender, sinks[vm - 1], vm_address(vm), size,
                                           seed=10 + vm)
            except Exception as e:  # reported below, in the test's thread
                errors.append(f"flow to vm{vm}: {e!r}")

        threads = [threading.Thread(target=flow, args=(vm,)) for vm in (1, 2)]
        try:
            for th in threads:
                th.start()
            for th in threads:
                th.join(200)  # each flow is bounded (checked_flow's timeouts) well within this
        finally:
            time.sleep(0.3)
            for c in captures:
                c.stop()
        self.assertFalse(any(th.is_alive() for th in threads), "a flow did not finish")
        self.assertEqual(errors, [])
        stats = h.vsnoopd.stats()
        for vm in (1, 2):
            guest = stats["guests"][vm - 1]
            self.assertEqual(guest["name"], h.guest_names[vm - 1])
            counters = guest["counters"]
            flows = [f for f in h.vsnoopd.flows() if f["guest"] == guest["name"]]
            self.assertEqual([f["guest_address"] for f in flows],
                             [netnstest.endpoint(vm_address(vm), 5001)])
            figure(f"two VMs, vm{vm}: {results[vm][0]['mbps']:.0f} Mbit/s, early ACKs "
                   f"{counters['early_acks']}, suppressed {counters['guest_acks_suppressed']}, "
                   f"buffer drops {counters['frames_dropped_no_room']}")
            self.assertGreater(counters["early_acks"], 0)
            self.assertGreaterEqual(counters["bytes_delivered"], size)
            self.check_delivery([captures[0], captures[1], captures[vm + 1]], False,
                                counters["frames_dropped_no_room"], vm=vm)
            other = vm_address(3 - vm)
            self.assertEqual(tcp_data_segments(captures[vm + 1].path, sender_address(), other), [],
                             f"vm{vm} received frames of vm{3 - vm}'s flow")
            self.assertNoVmDrops(h, vm - 1)
        self.assertEqual(stats["bridge"]["internal_bugs"], 0)

    def test_ipv6_vsnoop_on_k3(self):
        self.run_flows("vsnoop", K3, [1 * MB, 16 * MB], capture=[16 * MB], ipv6=True)

    def test_one_spurious_retransmission_keeps_the_window_within_the_buffer(self):
        # With vSnoop on, vsnoopd shows the sender a buffer-aware window: no more room
        # beyond the ACK than the VM's buffer (1 MiB) can hold, so the sender cannot overrun
        # it while the VM waits for its turn. One spurious retransmission (here 100 bytes
        # injected 4 MB into a 16 MB flow at k = 3; on a busy host, a loss probe the sender
        # fires because an early ACK left vsnoopd late) sends the engine to UNEXPECTED_SEQ,
        # where it forwards the VM's ACKs as they come (section 5 of the brief: they carry
        # SACK blocks). The VM's D-SACK for the duplicate acknowledges exactly vSnoop's ACK,
        # the sender's SND.UNA, and carried the VM's own window (5,139,456 bytes in one
        # capture): the sender took it, and the next time the VM was off its core it overran
        # the buffer (windows of 5 to 9 MB, 53 to 100 frames dropped for want of room, 17 to
        # 20 Mbit/s instead of about 90). Forwarded guest segments now carry at most the
        # buffer-aware window (Verdict::window_field). Expected: no window the sender takes
        # is wider than the buffer before the sender's FIN.
        h = self.host("vsnoop", K3)
        buffer_bytes = h.vsnoopd.stats()["guests"][0]["buffer"]["max_bytes"]
        sink = Sink(self.topo, h.vms[0])
        capture = Capture(self.topo, h.sender, "eth0", os.path.join(self.tmp, "sender.pcap"))
        injector = self.topo.spawn(h.sender, [netnstest.paths.PYTHON,
                                              os.path.join(os.path.dirname(__file__),
                                                           "inject_duplicate.py"),
                                              "eth0", vm_address(1), "5001", str(4 * MB)])
        time.sleep(1.0)  # scapy's sniffer takes a moment to start
        sent, _ = checked_flow(h.sender, sink, vm_address(1), 16 * MB)
        out, err = injector.communicate(timeout=30)
        self.assertEqual(injector.returncode, 0, err)
        time.sleep(0.3)
        capture.stop()
        self.assertTrue(capture.complete)
        fin = int(tshark_fields(capture.path, f"ip.src=={sender_address()} && tcp.flags.fin==1",
                                ["frame.number"])[0][0])
        # tcp.window_size: the window scaled by the factor of the handshake, in bytes. Only
        # the windows the sender takes count: an ACK older than one it has already had
        # (SEG.ACK < SND.UNA) is ignored, window and all (RFC 9293 section 3.10.7.4; Linux's
        # tcp_ack returns early for it). The VM's own ACKs forwarded in UNEXPECTED_SEQ are
        # such old ACKs and carry the VM's window: counted apart.
        rows = tshark_fields(
            capture.path, f"ip.src=={vm_address(1)} && tcp.srcport==5001 && frame.number<{fin}",
            ["tcp.ack", "tcp.window_size"])
        newest = 0
        widest = 0
        old_wide = 0
        for ack, window in ((int(a), int(w)) for a, w in rows if a and w):
            if ack < newest:
                old_wide += window > buffer_bytes
                continue
            newest = ack
            widest = max(widest, window)
        dropped = netnstest.guest_counters(h.vsnoopd)["frames_dropped_no_room"]
        figure(f"after one spurious retransmission ({out.strip()}): widest window the sender "
               f"takes before the FIN {widest} bytes (buffer {buffer_bytes}), {old_wide} older "
               f"ACKs with a wider one (ignored), {dropped} frames dropped for want of room, "
               f"{sent['retransmits']} retransmitted, {sent['mbps']:.0f} Mbit/s")
        self.assertLessEqual(widest, buffer_bytes)

if __name__ == "__main__":
    unittest.main()
