"""vsnoopd with a real VM: a qemu guest (lab/guest, TCG) attached to vsnoopd's qemu stream
socket (--guest qemu:PATH), receiving checked TCP flows from a sender namespace.

    [sender ns] eth0 --veth-- up0 [host ns: vsnoopd --guest qemu:SOCK] <-unix stream-> qemu

One guest boots (qemu 7.2's stream netdev connects once, so vsnoopd listens first), takes
an 8 MB flow with vSnoop on (early ACKs must have been sent for it) and one with vSnoop
switched off (none may be); the guest's sink prints the SHA-256 of what it received, which
must be the sender's. Then qemu is stopped: vsnoopd must see the guest go (its disconnects
counter, its flows forgotten), and a new qemu attached to the same socket must take a
third checked flow.

Exit status 77 (skipped) when not root, without qemu or TCG, or without namespaces.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "netns"))
import netnstest  # noqa: E402
from netnstest import VsnoopdTestCase, figure, sender_address, vm_address  # noqa: E402


def require_qemu():
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        print("SKIP: qemu-system-x86_64 is not installed")
        sys.exit(netnstest.SKIP)
    accels = subprocess.run([qemu, "-accel", "help"], capture_output=True, text=True).stdout
    if "tcg" not in accels.split():
        print("SKIP: qemu has no TCG")
        sys.exit(netnstest.SKIP)


netnstest.require_environment()
require_qemu()

from vsnooplab import qemu  # noqa: E402
from vsnooplab.netns import wait_for  # noqa: E402
from vsnooplab.transfer import send  # noqa: E402

MB = 1 << 20
FLOW_BYTES = 8 * MB
BOOT_TIMEOUT = 180  # seconds to READY: TCG on a loaded 2-core machine (about 8 s unloaded)
FLOW_TIMEOUT = 120  # seconds without progress before a flow counts as stalled
# Both guests get the same MAC, as a restarted VM would: a new MAC behind the same address
# would leave the sender's neighbour entry pointing at the old one until it expires (the
# guest sends no gratuitous ARP), and the flow would crawl for half a minute.
GUEST_MAC = "52:54:56:00:77:11"


class QemuGuestThroughVsnoopd(VsnoopdTestCase):
    def setUp(self):
        super().setUp()
        # Short paths: a unix socket path has at most 107 bytes.
        self.run_root = tempfile.mkdtemp(prefix="vsq-")
        self.addCleanup(shutil.rmtree, self.run_root, True)
        self.sender = self.topo.netns("snd")
        self.host_ns = self.topo.netns("host")
        self.topo.veth(self.sender, "eth0", self.host_ns, "up0")
        self.sender.ip("addr", "add", f"{sender_address()}/24", "dev", "eth0")
        self.socket = os.path.join(self.run_root, "g.sock")
        self.vsnoopd = self.start_vsnoopd(self.host_ns,
                                          ["--uplink", "up0", "--guest", f"qemu:{self.socket}"])
        self.guest_name = f"qemu:{self.socket}"

    def boot(self, gid):
        started = time.monotonic()
        guest = qemu.QemuGuest(self.topo, gid, "sink", f"stream:{self.socket}",
                               f"{vm_address(1)}/24", netns=self.host_ns.name,
                               guest_args=("--timeout", str(BOOT_TIMEOUT), "--mac", GUEST_MAC),
                               run_root=self.run_root)
        figure(f"guest {gid} ready in {time.monotonic() - started:.1f} s")
        wait_for(lambda: self.guest_stats()["connected"], 10, f"vsnoopd to see {gid} attached")
        return guest

    def guest_stats(self):
        return self.vsnoopd.stats()["guests"][0]

    def checked_flow(self, guest, seed, label):
        sent = send(self.sender, vm_address(1), FLOW_BYTES, seed=seed, timeout=FLOW_TIMEOUT)
        got = guest.next_sink_result(timeout=FLOW_TIMEOUT)
        self.assertEqual((got["bytes"], got["sha256"]), (FLOW_BYTES, sent["sha256"]),
                         f"{label}: the guest received something else than was sent")
        figure(f"{label}: {FLOW_BYTES // MB} MB at {sent['mbps']:.0f} Mbit/s, sender RTT mean "
               f"{sent['rtt_ms_mean']:.2f} ms, {sent['retransmits']} retransmitted")
        return sent

    def test_transfers_detach_and_reattach(self):
        qemu.build_guest()
        g1 = self.boot("g1")

        self.checked_flow(g1, seed=1, label="vSnoop on")
        counters = self.guest_stats()["counters"]
        self.assertGreater(counters["early_acks"], 0)
        self.assertGreater(counters["gso_segmented"], 0, "GSO frames must be cut for a stream port")
        flows = self.vsnoopd.flows()
        self.assertTrue(any(f["guest"] == self.guest_name for f in flows), flows)

        switch = subprocess.run([netnstest.paths.VSNOOPCTL, "--control", self.vsnoopd.control, "set",
                               "vsnoop", "off"], capture_output=True, text=True)
        self.assertEqual(switch.returncode, 0, switch.stderr)
        early_before = self.guest_stats()["counters"]["early_acks"]
        self.checked_flow(g1, seed=2, label="vSnoop off")
        self.assertEqual(self.guest_stats()["counters"]["early_acks"], early_before)
        self.vsnoopd.ctl("set", "vsnoop", "on")

        # qemu goes away: vsnoopd notices, counts it, and forgets the guest's flows.
        forgotten_before = self.vsnoopd.stats()["engine"]["flows_forgotten"]
        g1.stop()
        wait_for(lambda: not self.guest_stats()["connected"], 20, "vsnoopd to see g1 leave")
        stats = self.vsnoopd.stats()
        self.assertEqual(stats["guests"][0]["counters"]["disconnects"], 1)
        self.assertEqual([f for f in self.vsnoopd.flows() if f["guest"] == self.guest_name], [])
        self.assertGreater(stats["engine"]["flows_forgotten"], forgotten_before)
        self.assertEqual(stats["guests"][0]["buffer"]["frames"], 0)

        # A new qemu on the same socket works like the first. vsnoopd forgot the guest's
        # MAC address with it, and a frame to an unknown address is flooded past the engine:
        # a SYN sent on the sender's still valid neighbour entry would never be seen, and
        # its flow never accelerated (tests/netns test_counters, the expected failure
        # test_first_flow_to_a_silent_guest_is_accelerated). Asking for the address again
        # makes the guest answer first, as a restarted VM announcing itself would.
        g2 = self.boot("g2")
        self.sender.ip("neigh", "flush", "dev", "eth0")
        early_before = self.guest_stats()["counters"]["early_acks"]
        self.checked_flow(g2, seed=3, label="vSnoop on, second qemu")
        self.assertGreater(self.guest_stats()["counters"]["early_acks"], early_before)
        self.assertEqual(self.guest_stats()["counters"]["disconnects"], 1)
        g2.stop()


if __name__ == "__main__":
    unittest.main()
