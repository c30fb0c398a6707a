"""vsnoopd's counters and run-time switches on real flows, as an operator reads them with
vsnoopctl: with vSnoop on, a 16 MB flow at k = 3 is acknowledged early and the VM's own
redundant ACKs are suppressed or replaced by window updates; with it off, nothing is; the
flow table lists the flow; `vsnoopctl set vsnoop off|on` (for every guest, or one with
--guest NAME) takes effect while a flow runs: the counters stop growing at once while the
data keeps flowing, and grow again when switched back on.
"""
import json
import re
import subprocess
import time
import unittest

import netnstest
from netnstest import K3, VsnoopdTestCase, figure, sender_address, vm_address

netnstest.require_environment()

from vsnooplab import paths  # noqa: E402
from vsnooplab.netns import wait_for  # noqa: E402
from vsnooplab.transfer import Sink, checked_flow  # noqa: E402

MB = 1 << 20
ACTIONS = ("early_acks", "guest_acks_suppressed", "window_updates")


def ctl(vsnoopd, *args):
    """Runs vsnoopctl against vsnoopd; returns (exit status, stdout, stderr)."""
    p = subprocess.run([paths.VSNOOPCTL, "--control", vsnoopd.control, *args],
                       capture_output=True, text=True, timeout=10)
    return p.returncode, p.stdout, p.stderr


class Counters(VsnoopdTestCase):
    def one_flow(self, mode):
        h = self.host(mode, K3)
        sink = Sink(self.topo, h.vms[0])
        known = netnstest.flow_keys(h.vsnoopd)
        sent, _ = checked_flow(h.sender, sink, vm_address(1), 16 * MB)
        return h, sent, netnstest.new_flow(h.vsnoopd, known)

    def test_vsnoop_on_acknowledges_early_and_suppresses(self):
        h, sent, flow = self.one_flow("vsnoop")
        stats = h.vsnoopd.stats()
        engine, guest = stats["engine"], stats["guests"][0]
        figure(f"k=3 16 MB, vSnoop on: engine {[engine[k] for k in ACTIONS]} "
               f"(early ACKs, suppressed, window updates), {sent['mbps']:.0f} Mbit/s")
        self.assertEqual(stats["vsnoop"], "on")
        self.assertEqual(guest["vsnoop"], "on")
        self.assertGreater(engine["early_acks"], 0)
        self.assertGreater(engine["guest_acks_suppressed"] + engine["window_updates"], 0)
        self.assertGreater(guest["counters"]["early_acks"], 0)
        # Every early ACK the engine made was sent, or replaced by a later one of the same
        # flow and burst (the later one acknowledges at least as much).
        counters = guest["counters"]
        sent_or_replaced = counters["early_acks"] + counters["early_acks_coalesced"]
        self.assertEqual(sent_or_replaced, engine["early_acks"])
        self.assertEqual(guest["counters"]["window_updates"], engine["window_updates"])
        self.assertGreater(flow["stats"]["early_acks"], 0)
        self.assertGreater(flow["stats"]["guest_acks_suppressed"] + flow["stats"]["window_updates"], 0)
        self.assertEqual(stats["bridge"]["internal_bugs"], 0)
        # The same counters as text: the switch, then the engine's section first. (A late
        # frame of the flow may still move a counter: compare with a snapshot taken just
        # after the text, until one matches.)
        for _ in range(10):
            code, out, err = ctl(h.vsnoopd, "stats")
            self.assertEqual(code, 0, err)
            engine = h.vsnoopd.stats()["engine"]
            self.assertEqual(out.splitlines()[:2], ["vSnoop: on", "engine"])
            shown = {}
            for k in ACTIONS:
                m = re.search(rf"^  {k} +(\d+)$", out, re.M)
                self.assertIsNotNone(m, f"no {k} line in:\n{out}")
                shown[k] = int(m.group(1))
            if shown == {k: engine[k] for k in ACTIONS}:
                break
            time.sleep(0.2)
        else:
            self.fail(f"vsnoopctl stats shows {shown}, the JSON {[engine[k] for k in ACTIONS]}")
        self.assertIn(f"guest {guest['name']} (connected, vSnoop on, ", out)

    def test_vsnoop_off_acknowledges_nothing(self):
        h, _, flow = self.one_flow("vsnoop-off")
        stats = h.vsnoopd.stats()
        engine, guest = stats["engine"], stats["guests"][0]
        self.assertEqual(stats["vsnoop"], "off")
        self.assertEqual(guest["vsnoop"], "off")
        self.assertEqual([engine[k] for k in ACTIONS], [0, 0, 0])
        self.assertEqual([guest["counters"][k] for k in ACTIONS], [0, 0, 0])
        self.assertEqual([flow["stats"][k] for k in ACTIONS], [0, 0, 0])
        # Off, vsnoopd still observes: the flow is in the table with what it carried.
        self.assertGreaterEqual(flow["stats"]["payload_bytes_to_guest"], 16 * MB)

    def test_flows_lists_the_flow(self):
        h, _, flow = self.one_flow("vsnoop")
        name = h.vsnoopd.stats()["guests"][0]["name"]
        self.assertEqual(flow["guest"], name)
        self.assertEqual(flow["guest_address"], f"{vm_address(1)}:5001")
        self.assertEqual(flow["remote"].rsplit(":", 1)[0], sender_address())
        self.assertIn(flow["state"], ("CLOSING", "CLOSED"))  # the sender has sent its FIN
        options = flow["options"]
        self.assertTrue(options["timestamps"] and options["sack"])
        self.assertEqual(options["mss"], 1460)
        # --guest selects one guest's flows; an unknown name selects none.
        code, out, _ = ctl(h.vsnoopd, "--json", "flows", "--guest", name)
        self.assertEqual(code, 0)
        self.assertIn(flow["remote"], [f["remote"] for f in json.loads(out)["flows"]])
        code, out, _ = ctl(h.vsnoopd, "--json", "flows", "--guest", "veth:nosuch")
        self.assertEqual((code, json.loads(out)["flows"]), (0, []))
        # The table as text: a header, then the flow's line with its addresses and state.
        code, out, err = ctl(h.vsnoopd, "flows")
        self.assertEqual(code, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0].split()[:3], ["REMOTE", "GUEST", "STATE"])
        line = next((l for l in lines[1:] if l.startswith(flow["remote"])), None)
        self.assertIsNotNone(line, out)
        self.assertEqual(line.split()[1:3], [flow["guest_address"], flow["state"]])

    def test_flows_text_shows_counters_in_their_columns(self):
        # EARLY_ACKS, SUPPRESSED and WUPDATES each in a whitespace-separated column (they
        # once ran together: nlohmann::json's operator<< ignores the stream's width).
        h, _, flow = self.one_flow("vsnoop")
        code, out, _ = ctl(h.vsnoopd, "flows")
        line = next(l for l in out.splitlines() if l.startswith(flow["remote"]))
        stats = flow["stats"]
        self.assertEqual(line.split()[3:7],
                         [str(stats["early_acks"]), str(stats["guest_acks_suppressed"]),
                          str(stats["window_updates"]), flow["guest"]])

    def test_switches_take_effect_mid_flow(self):
        h = self.host("vsnoop", K3)
        guest = h.vsnoopd.stats()["guests"][0]["name"]
        sink = Sink(self.topo, h.vms[0])
        # The sender is held to 40 Mbit/s: at most 450 KB arrive per 90 ms round of the
        # three VMs, well inside the 1 MB buffer, so no switch makes the buffer overflow and
        # the flow lasts about 7 s, long enough for every phase below.
        h.sender.exec("tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "40mbit",
                      "burst", "64kb", "latency", "100ms")
        size = 32 * MB
        sender = self.topo.spawn(h.sender, [paths.PYTHON, paths.FLOWSEND, "--to", vm_address(1),
                                            "--port", "5001", "--bytes", str(size), "--seed", "9",
                                            "--cc", "cubic", "--timeout", "120"])

        def sample():
            s = h.vsnoopd.stats()
            g = s["guests"][0]
            return {"early_acks": s["engine"]["early_acks"],
                    "guest_acks_suppressed": s["engine"]["guest_acks_suppressed"],
                    "window_updates": s["engine"]["window_updates"],
                    "delivered": g["counters"]["bytes_delivered"],
                    "global": s["vsnoop"], "guest": g["vsnoop"]}

        def phase(seconds, until=None):
            """Counter deltas over `seconds`, or until until(deltas) holds (at most 5 s)."""
            start = sample()
            deadline = time.monotonic() + (5.0 if until else seconds)
            while True:
                time.sleep(0.05)
                now = sample()
                delta = {k: now[k] - start[k] for k in ACTIONS + ("delivered",)}
                if until and until(delta):
                    return delta
                if time.monotonic() >= deadline:
                    self.assertIsNone(sender.poll(), "the flow ended before the test did: "
                                      "make it longer")
                    return delta

        def switch(*args):
            code, _, err = ctl(h.vsnoopd, "set", "vsnoop", *args)
            self.assertEqual(code, 0, err)

        early = lambda d: d["early_acks"] > 0  # noqa: E731
        wait_for(lambda: sample()["early_acks"] > 0, 30, "the first early ACK")
        self.assertTrue(early(phase(0, until=early)), "early ACKs do not grow while vSnoop is on")

        for off, on, expect in ((("off",), ("on",), ("off", "off")),
                                (("off", "--guest", guest), ("on", "--guest", guest), ("on", "off"))):
            switch(*off)
            now = sample()
            self.assertEqual((now["global"], now["guest"]), expect)
            delta = phase(0.6)
            figure(f"vsnoopctl set vsnoop {' '.join(off)}: over 0.6 s {delta}")
            self.assertEqual([delta[k] for k in ACTIONS], [0, 0, 0],
                             f"vSnoop still acts after 'set vsnoop {' '.join(off)}'")
            self.assertGreater(delta["delivered"], 0, "the flow stalled while vSnoop was off")
            switch(*on)
            self.assertEqual((sample()["global"], sample()["guest"]), ("on", "on"))
            delta = phase(0, until=early)
            self.assertTrue(early(delta), f"no early ACK after 'set vsnoop {' '.join(on)}': {delta}")

        code, _, err = ctl(h.vsnoopd, "set", "vsnoop", "off", "--guest", "veth:nosuch")
        self.assertEqual(code, 1)
        self.assertIn("no guest named veth:nosuch", err)
        self.assertEqual(sample()["guest"], "on")

        out, err = sender.communicate(timeout=120)
        self.assertEqual(sender.returncode, 0, err)
        sent = json.loads(out)
        counters = netnstest.guest_counters(h.vsnoopd)
        figure(f"flow with switches: {size // MB} MB in {sent['seconds']:.1f} s, "
               f"{sent['retransmits']} retransmitted, {counters['frames_dropped_no_room']} "
               f"frames dropped for want of room")
        got = sink.next_result()
        self.assertEqual((got["bytes"], got["sha256"]), (size, sent["sha256"]))


class SilentGuest(VsnoopdTestCase):
    def test_first_flow_to_a_silent_guest_is_accelerated(self):
        # vsnoopd learns a guest's MAC address from the frames the guest sends, and forgets
        # it when the guest's port goes away (Datapath::OnGuestGone) or after 300 s of
        # silence. A frame to an address it does not know is flooded, and flooded frames
        # skip the engine (Datapath::OnFrame). So when a sender's neighbour entry outlives
        # vsnoopd's (a restarted qemu with the same MAC, a restarted vsnoopd, a guest that
        # only listens), the SYN of the next flow is flooded unseen. The engine learns the
        # flow from the guest's SYN-ACK instead (flows_from_syn_ack); before it did, the
        # flow stayed passive to the end (handshake_mismatch, then mid_stream).
        # Here: vsnoopd restarted, the VM silent (IPv6 off), the sender's neighbour entry
        # permanent. Expected: the flow is accelerated like any other.
        h = self.host("vsnoop", netnstest.K1)
        for ns in (h.sender, h.vms[0]):
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
        vm_mac = json.loads(h.vms[0].ip("-j", "link", "show", "eth0"))[0]["address"]
        h.sender.ip("neigh", "replace", vm_address(1), "lladdr", vm_mac, "dev", "eth0",
                    "nud", "permanent")
        self.check_clean_exit(h.vsnoopd)
        v = self.start_vsnoopd(h.host, ["--uplink", "up0", "--guest", "veth:vm1"])
        sink = Sink(self.topo, h.vms[0])
        checked_flow(h.sender, sink, vm_address(1), 4 * MB)
        stats = v.stats()
        figure(f"first flow to a silent guest: {[stats['engine'][k] for k in ACTIONS]} (early "
               f"ACKs, suppressed, window updates), reasons {stats['engine']['reasons']}")
        self.assertGreater(stats["engine"]["early_acks"], 0)
        self.assertEqual(stats["engine"]["flows_from_syn_ack"], 1)


if __name__ == "__main__":
    unittest.main()
