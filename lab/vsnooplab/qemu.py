"""Real VMs for the lab: qemu guests (lab/guest) attached to vsnoopd's stream socket or to a
tap on a Linux bridge, driven through lab/guest/run.sh."""
import os
import re
import subprocess
import time

from . import paths
from .netns import run

RUN_SH = os.path.join(paths.REPO, "lab", "guest", "run.sh")
BUILD_SH = os.path.join(paths.REPO, "lab", "guest", "build.sh")


def build_guest():
    run([BUILD_SH, "--quiet"])


class QemuGuest:
    """One guest. `net` is "stream:PATH" or "tap:IFNAME" (with netns and bridge)."""

    def __init__(self, topo, gid, role, net, ip, cpus="1", netns=None, bridge=None, rr=False,
                 guest_args=(), run_root=None):
        self.topo = topo
        self.id = gid
        self.env = dict(os.environ)
        if run_root:
            self.env["VSNOOP_GUEST_RUN"] = run_root
        argv = [RUN_SH, "start", "--id", gid, "--role", role, "--net", net, "--ip", ip,
                "--cpus", cpus, *guest_args]
        if netns:
            argv += ["--netns", netns]
        if bridge:
            argv += ["--bridge", bridge]
        if rr:
            argv.append("--rr")
        self.pid = int(run(argv, env=self.env).strip().split()[-1])
        self.log_path = run([RUN_SH, "log", gid], env=self.env).strip()
        topo.cleanups.append(self.stop)
        self._read = 0

    def stop(self):
        run([RUN_SH, "stop", self.id], check=False, env=self.env)

    def exec(self, *cmd, timeout=30):
        return run([RUN_SH, "exec", self.id, "-t", str(timeout), "--", *cmd], env=self.env)

    def next_sink_result(self, timeout=300):
        """The next "SHA256 <hex> BYTES <n>" line the sink prints on the console."""
        deadline = time.monotonic() + timeout
        pattern = re.compile(r"SHA256 ([0-9a-f]{64}) BYTES (\d+)")
        while time.monotonic() < deadline:
            with open(self.log_path, errors="replace") as f:
                found = pattern.findall(f.read())
            if len(found) > self._read:
                digest, nbytes = found[self._read]
                self._read += 1
                return {"sha256": digest, "bytes": int(nbytes)}
            time.sleep(0.05)
        raise TimeoutError(f"guest {self.id} printed no sink result in {timeout}s")


class RoundRobin:
    """SCHED_RR with a given quantum for the duration of a run (the Xen-like case)."""

    FILE = "/proc/sys/kernel/sched_rr_timeslice_ms"

    def __init__(self, slice_ms):
        self.slice_ms = slice_ms
        self.saved = None

    def __enter__(self):
        with open(self.FILE) as f:
            self.saved = f.read().strip()
        with open(self.FILE, "w") as f:
            f.write(str(self.slice_ms))
        return self

    def __exit__(self, *exc):
        with open(self.FILE, "w") as f:
            f.write(self.saved)
