"""Packet captures in a namespace (tcpdump) and what the lab reads back from them (tshark).

    with Capture(topo, ns, "eth0", "/tmp/x.pcap") as cap:   # capturing once __enter__ returns
        ... run a flow ...
    segments = tcp_data_segments(cap.path, src="10.77.0.1", dst="10.77.0.11")

A capture is stopped by PID (SIGINT, so tcpdump writes its statistics); `complete` then says
whether tcpdump wrote every packet its filter took (none dropped by the kernel, none left
unread), which a test must check before it trusts a comparison of two captures.
"""
import os
import re
import signal
import subprocess

from .netns import run, wait_for


class Capture:
    def __init__(self, topo, ns, ifname, path, snaplen=128, capture_filter="tcp",
                 buffer_kib=16384):
        self.topo = topo
        self.ns = ns
        self.path = path
        self.dropped = None
        self.captured = None
        self.received = None
        self._stderr_path = path + ".stderr"
        self._stderr = open(self._stderr_path, "w")
        # --immediate-mode: packets reach tcpdump as they come, not when a ring block is full
        # or times out (tcpdump stopped in between would never write them); -U: each packet
        # is written as it comes; -B: a large kernel buffer, so a fast flow is not dropped by
        # the capture itself.
        self.proc = topo.spawn(ns, ["tcpdump", "-i", ifname, "-s", str(snaplen), "-U",
                                    "--immediate-mode", "-B", str(buffer_kib), "-n", "-w", path,
                                    capture_filter],
                               stdout=subprocess.DEVNULL, stderr=self._stderr)
        wait_for(self._listening, 10, f"tcpdump on {ns.name}/{ifname}")

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"tcpdump exited ({self.proc.returncode}): {self._read_stderr()}")
        return "listening on" in self._read_stderr()

    def _read_stderr(self):
        with open(self._stderr_path) as f:
            return f.read()

    def stop(self):
        """Ends the capture; returns the number of packets the kernel dropped for it."""
        self.topo.stop(self.proc, timeout=10, sig=signal.SIGINT)  # tcpdump writes its tally
        self._stderr.close()
        text = self._read_stderr()
        m = re.search(r"(\d+) packets? dropped by kernel", text)
        self.dropped = int(m.group(1)) if m else None
        m = re.search(r"(\d+) packets? captured", text)
        self.captured = int(m.group(1)) if m else None
        m = re.search(r"(\d+) packets? received by filter", text)
        self.received = int(m.group(1)) if m else None
        os.unlink(self._stderr_path)
        return self.dropped

    @property
    def complete(self):
        return self.dropped == 0 and self.captured is not None and self.captured == self.received

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def tshark_fields(path, display_filter, fields, extra_args=()):
    """Rows of the given tshark fields (lists of strings) for the packets matching the filter."""
    argv = ["tshark", "-n", "-r", path, *extra_args, "-Y", display_filter, "-T", "fields",
            "-E", "separator=\t", "-E", "occurrence=f"]
    for f in fields:
        argv += ["-e", f]
    out = run(argv)
    return [line.split("\t") for line in out.splitlines() if line]


def tcp_data_segments(path, src, dst):
    """(raw sequence number, payload length) of every TCP segment with data from src to dst,
    in capture order."""
    field = "ipv6" if ":" in src else "ip"
    rows = tshark_fields(path, f"{field}.src=={src} && {field}.dst=={dst} && tcp.len>0",
                         ["tcp.seq_raw", "tcp.len"])
    return [(int(seq), int(length)) for seq, length in rows]
