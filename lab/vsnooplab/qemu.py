"""Real VMs for the lab: qemu guests (lab/guest) attached to vsnoopd's stream socket or to a
tap on a Linux bridge, driven through lab/guest/run.sh; and QemuHost, a host whose guests
share one core under SCHED_RR (the Xen-like case).

    [sender ns] eth0 --veth-- up0 [host ns: vsnoopd --guest qemu:SOCK, or bridge br0 + tap]
                                        |
                               qemu g1 (receiver, sink role) + k-1 qemu neighbours (burn)
                               all on the guests' CPU, SCHED_RR, slice_ms quantum
"""
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


def thread_names(pid):
    """{tid: comm} of every thread of a process."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                out[int(tid)] = f.read().strip()
        except OSError:
            pass
    return out


class QemuGuest:
    """One guest. `net` is "stream:PATH" or "tap:IFNAME" (with netns and bridge)."""

    def __init__(self, topo, gid, role, net, ip, cpus="1", netns=None, bridge=None, rr=False,
                 guest_args=(), run_root=None, env=None):
        self.topo = topo
        self.id = gid
        self.env = dict(os.environ)
        self.env.update({k: v for k, v in (env or {}).items() if v})
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
        self.stopped = False

    def stop(self):
        if not self.stopped:
            run([RUN_SH, "stop", self.id], check=False, env=self.env)
            self.stopped = True
            if self.stop in self.topo.cleanups:
                self.topo.cleanups.remove(self.stop)

    def exec(self, *cmd, timeout=30):
        return run([RUN_SH, "exec", self.id, "-t", str(timeout), "--", *cmd], env=self.env)

    def sched(self, mode):
        """"rr": every thread to SCHED_RR priority 1; "restore": back to what they had."""
        run([RUN_SH, "sched", self.id, mode], env=self.env)

    def threads(self):
        return thread_names(self.pid)

    def vcpu_tids(self):
        # qemu names its vCPU threads "CPU <n>/TCG" (or "/KVM").
        return [t for t, name in self.threads().items() if name.startswith("CPU ")]

    def pin(self, cpus):
        run(["taskset", "-a", "-p", "-c", str(cpus), str(self.pid)])

    def move_io_threads(self, cpu):
        """Every thread but the vCPUs to `cpu` under SCHED_OTHER: the analogue of Xen's
        netback running in the driver domain, on a core of its own."""
        for tid, name in self.threads().items():
            if name.startswith("CPU "):
                continue
            run(["taskset", "-p", "-c", str(cpu), str(tid)], check=False)
            run(["chrt", "-o", "-p", "0", str(tid)], check=False)

    def sink_results(self):
        with open(self.log_path, errors="replace") as f:
            return re.findall(r"SHA256 ([0-9a-f]{64}) BYTES (\d+)", f.read())

    def next_sink_result(self, timeout=300):
        """The next "SHA256 <hex> BYTES <n>" line the sink prints on the console."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.sink_results()
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
        if self.saved is not None:
            with open(self.FILE, "w") as f:
                f.write(self.saved)
            self.saved = None


class QemuHost:
    """k qemu guests on one core: guest g1 receives (sink role), the others burn CPU.

    The receiver is attached either to vsnoopd (stream socket; vSnoop switched on or off at
    run time, so both modes share the daemon and the VM) or to a tap on a Linux bridge. Guests
    boot on the host CPU (so booting does not compete with neighbours under SCHED_RR) and
    are then moved to the guests' CPU and put under SCHED_RR.
    """

    RECEIVER_IP = "10.77.0.11"
    SENDER_IP = "10.77.0.1"

    def __init__(self, topo, workdir, slice_ms=30, guest_cpu=1, host_cpu=0, io_threads="shared",
                 receiver_args=(), mem_mb=384, vsnoopd_args=(), receiver_env=None):
        from .hosts import Vsnoopd  # circular at import time otherwise
        self._vsnoopd_class = Vsnoopd
        assert io_threads in ("shared", "host", "receiver"), io_threads
        self.topo = topo
        self.workdir = workdir
        self.run_root = os.path.join(workdir, "guests")
        os.makedirs(self.run_root, exist_ok=True)
        self.guest_cpu = guest_cpu
        self.host_cpu = host_cpu
        self.io_threads = io_threads
        self.receiver_args = list(receiver_args)
        self.receiver_env = dict(receiver_env or {})
        self.mem_mb = mem_mb
        self.vsnoopd_args = list(vsnoopd_args)
        self.sender = topo.netns("snd")
        self.host = topo.netns("host")
        topo.veth(self.sender, "eth0", self.host, "up0")
        self.sender.ip("addr", "add", f"{self.SENDER_IP}/24", "dev", "eth0")
        self.rr = RoundRobin(slice_ms)
        self.rr.__enter__()
        topo.cleanups.insert(0, self._restore_quantum)  # runs last (cleanups run reversed)
        self.neighbours = []
        self.receiver = None
        self.attachment = None
        self.vsnoopd = None
        self._bridge = False

    def _restore_quantum(self):
        self.rr.__exit__()

    def _boot(self, gid, role, net, ip, extra=(), bridge=None, receiver=False):
        args = ["--mem", str(self.mem_mb), "--timeout", "180", *extra]
        g = QemuGuest(self.topo, gid, role, net, ip, cpus=str(self.host_cpu), netns=self.host.name,
                      bridge=bridge, guest_args=args, run_root=self.run_root,
                      env=self.receiver_env if receiver else None)
        g.pin(self.guest_cpu)
        g.sched("rr")
        if self.io_threads == "host" or (self.io_threads == "receiver" and receiver):
            g.move_io_threads(self.host_cpu)
        return g

    def set_neighbours(self, n):
        """Runs exactly n CPU-burning neighbour guests on the guests' core."""
        while len(self.neighbours) > n:
            self.neighbours.pop().stop()
        while len(self.neighbours) < n:
            i = len(self.neighbours) + 2
            self.neighbours.append(self._boot(f"n{i}", "burn", f"tap:tn{i}", f"10.77.9.{i}/24"))

    def attach(self, attachment, buffer_bytes=None, buffer_frames=None):
        """(Re)starts the receiver on `attachment`: "vsnoopd" or "bridge"."""
        if self.receiver:
            self.receiver.stop()
            self.receiver = None
        if self.vsnoopd:
            self.vsnoopd.stop()
            self.vsnoopd = None
        ip = f"{self.RECEIVER_IP}/24"
        if attachment == "vsnoopd":
            if self._bridge:
                self.host.ip("link", "set", "up0", "nomaster")
            sock = os.path.join(self.workdir, "g1.sock")
            args = ["--uplink", "up0", "--guest", f"qemu:{sock}"]
            if buffer_bytes:
                args += ["--buffer-bytes", str(buffer_bytes)]
            if buffer_frames:
                args += ["--buffer-frames", str(buffer_frames)]
            self.vsnoopd = self._vsnoopd_class(self.topo, self.host, args + self.vsnoopd_args,
                                               self.workdir, cpu=self.host_cpu)
            self.guest_name = f"qemu:{sock}"
            self.receiver = self._boot("g1", "sink", f"stream:{sock}", ip, self.receiver_args,
                                       receiver=True)
        elif attachment == "bridge":
            if not self._bridge:
                self.host.ip("link", "add", "br0", "type", "bridge")
                self.host.ip("link", "set", "br0", "up")
                self._bridge = True
            self.host.ip("link", "set", "up0", "master", "br0")
            self.guest_name = None
            self.receiver = self._boot("g1b", "sink", "tap:tr1", ip, self.receiver_args, bridge="br0",
                                       receiver=True)
        else:
            raise ValueError(attachment)
        self.attachment = attachment

    def vcpu_schedstat(self):
        tids = self.receiver.vcpu_tids() if self.receiver else []
        return f"/proc/{self.receiver.pid}/task/{tids[0]}/schedstat" if tids else None

    def close(self):
        if self.receiver:
            self.receiver.stop()
        for g in self.neighbours:
            g.stop()
        if self.vsnoopd:
            self.vsnoopd.stop()
        self._restore_quantum()
