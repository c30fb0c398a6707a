"""The safety tests' host: real Linux TCP on both sides, a link that misbehaves on purpose,
and captures on every side, all in network namespaces that are removed afterwards.

    [snd] eth0 ---veth--- is [imp: vsnoop-impair] ih ---veth--- up0 [host: vsnoopd] vmN ---veth--- eth0 [vmN]

Captures (tcpdump, headers only): the sender's eth0 (what the sender sends and receives),
the impairment stage's ih (what vsnoopd's uplink emits, in the order it emits it), each
VM's eth0 (what reached the VM), and vsnoopd's --pcap-out (every frame vSnoop generated or
suppressed, commented). Run as root with /usr/bin/python3.
"""
import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "lab"))

from vsnooplab import paths  # noqa: E402
from vsnooplab.hosts import Vsnoopd, sender_address, vm_address  # noqa: E402
from vsnooplab.netns import Topology as _Topology, run, wait_for  # noqa: E402
from vsnooplab.observe import control_request  # noqa: E402
from vsnooplab.transfer import Sink, checked_flow  # noqa: E402

IMPAIR = os.path.join(paths.BUILD, "tools", "impair", "vsnoop-impair")
FLOOD = os.path.join(paths.BUILD, "tests", "safety", "vsnoop-flood")
MEASURE_LOCK = "/tmp/vsnoop-measure.lock"

# The impairments of the matrix, as vsnoop-impair flags (applied to both directions).
IMPAIRMENTS = {
    "none": [],
    "loss1": ["--loss", "0.01"],
    # A burst also ends after 50 ms: counted in frames alone, one burst would swallow a
    # sender's next 8 retransmissions, minutes of timeout backoff (a link that fails for
    # minutes, not a burst).
    "burst5": ["--burst-loss", "0.05:8", "--burst-max", "50ms"],
    "reorder": ["--reorder", "0.02:3", "--reorder-hold", "5ms"],
    "duplicate": ["--duplicate", "0.02"],
    "delay20": ["--delay", "20ms", "--jitter", "2ms"],
}
TIMING_SENSITIVE = {"delay20"}  # taken under the measurement lock


# Every namespace of the safety tests is named vss<letter><pid>-<role>: the letter says
# which test made it, the pid which run. Nothing else on the machine uses the vss prefix.
STALE_NAME = re.compile(r"^vss[a-z](\d+)-")
_libc = ctypes.CDLL("libc.so.6", use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In a child before exec: SIGKILL when the test process dies, however it dies."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _safety_test_alive(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"tests/safety/" in f.read()
    except OSError:
        return False


def sweep_stale_namespaces():
    """Removes the namespaces of safety-test runs that were killed outright (SIGKILL, a
    ctest timeout) and so could not clean up: their processes (started by that run, inside
    its namespaces) are killed by PID first. A run that ends any other way removes its own
    (vsnooplab.netns closes topologies at exit and on SIGINT, SIGTERM and SIGHUP)."""
    for line in run(["ip", "netns", "list"], check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        m = STALE_NAME.match(name)
        if not m or _safety_test_alive(int(m.group(1))):
            continue
        for pid in run(["ip", "netns", "pids", name], check=False).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        run(["ip", "netns", "del", name], check=False)


class Topology(_Topology):
    """vsnooplab's Topology with the safety tests' naming (tag "vss" + one letter), a sweep
    of what killed runs left behind, and children that die with the test process."""

    def __init__(self, tag):
        assert re.fullmatch(r"vss[a-z]", tag), tag
        sweep_stale_namespaces()
        super().__init__(tag)

    def spawn(self, ns, argv, **kw):
        kw.setdefault("preexec_fn", _die_with_parent)
        return super().spawn(ns, argv, **kw)


def require_root():
    if os.geteuid() != 0:
        print("SKIP: the safety tests need root (network namespaces)")
        sys.exit(77)  # ctest SKIP_RETURN_CODE


def require_binaries(*extra):
    missing = [p for p in (paths.VSNOOPD, paths.VSNOOPCTL, IMPAIR, *extra) if not os.access(p, os.X_OK)]
    if missing:
        raise SystemExit(f"missing binaries (build them first, or set VSNOOP_BUILD): {missing}")


class MeasureLock:
    """flock(/tmp/vsnoop-measure.lock): timing-sensitive runs never overlap measurements."""

    def __init__(self, take=True):
        self.take = take
        self.fd = None

    def __enter__(self):
        if self.take:
            self.fd = open(MEASURE_LOCK, "w")
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fd:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.fd.close()


class Capture:
    """tcpdump on one interface of one namespace, headers only, stopped with SIGINT."""

    def __init__(self, topo, ns, ifname, path, snaplen=192, direction=None):
        self.topo = topo
        self.path = path
        argv = ["tcpdump", "-i", ifname, "-s", str(snaplen), "-B", "16384", "--immediate-mode", "-U",
                "-n", "-w", path]
        if direction:
            argv += ["-Q", direction]
        argv += ["tcp"]
        self.proc = topo.spawn(ns, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        line = self.proc.stderr.readline()
        if "listening on" not in line:
            raise RuntimeError(f"tcpdump on {ns.name}/{ifname} did not start: {line}{self.proc.stderr.read()}")
        self.dropped = None

    def stop(self):
        self.topo.stop(self.proc, timeout=10, sig=signal.SIGINT)  # tcpdump writes its tally
        tail = self.proc.stderr.read()
        m = re.search(r"(\d+) packets? dropped by kernel", tail)
        self.dropped = int(m.group(1)) if m else 0
        return self.dropped


class Impairer:
    """vsnoop-impair between the sender and the host."""

    def __init__(self, topo, ns, flags, seed, workdir, name="impair"):
        self.topo = topo
        self.stats_path = os.path.join(workdir, f"{name}.json")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.log = open(self.log_path, "w")
        argv = [IMPAIR, *flags, "--seed", str(seed), "--stats-json", self.stats_path, "is", "ih"]
        self.proc = topo.spawn(ns, argv, stdout=self.log, stderr=subprocess.STDOUT, cpu=0)
        wait_for(lambda: self._started(), 10, "vsnoop-impair to start")

    def _started(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"vsnoop-impair exited: {open(self.log_path).read()}")
        with open(self.log_path) as f:
            return "vsnoop-impair:" in f.read()

    def stop(self):
        self.topo.stop(self.proc)
        self.log.close()
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}


def vmhwm_kib(pid):
    """Peak resident set size of a process (VmHWM), KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for {pid}")


class SafetyHost:
    """The topology above. `impair`: vsnoop-impair flags, or None for no impairment stage
    (the sender's veth then ends at vsnoopd's uplink)."""

    def __init__(self, topo, workdir, guests=1, ipv6=False, mtu=1500, offloads=True,
                 sender_sysctls=None, guest_sysctls=None, impair=None, seed=1):
        self.topo = topo
        self.workdir = workdir
        self.ipv6 = ipv6
        self.offloads = offloads
        self.sender = topo.netns("snd")
        self.host = topo.netns("host")
        self.vms = [topo.netns(f"vm{i}") for i in range(1, guests + 1)]
        self.impair_ns = None
        if impair is not None:
            self.impair_ns = topo.netns("imp")
            topo.veth(self.sender, "eth0", self.impair_ns, "is", up=False, offloads=offloads)
            topo.veth(self.impair_ns, "ih", self.host, "up0", up=False, offloads=offloads)
        else:
            topo.veth(self.sender, "eth0", self.host, "up0", up=False, offloads=offloads)
        for i, vm in enumerate(self.vms, start=1):
            topo.veth(vm, "eth0", self.host, f"vm{i}", up=False, offloads=offloads)
        links = [(self.sender, "eth0"), (self.host, "up0")] + \
                [(vm, "eth0") for vm in self.vms] + [(self.host, f"vm{i}") for i in range(1, guests + 1)]
        if self.impair_ns:
            links += [(self.impair_ns, "is"), (self.impair_ns, "ih")]
        for ns, ifname in links:
            ns.ip("link", "set", ifname, "mtu", str(mtu))
            if offloads:
                # veth receives without GRO unless asked: "GSO/GRO on" means both.
                ns.exec("ethtool", "-K", ifname, "gro", "on", check=False)
            ns.ip("link", "set", ifname, "up")
        self._address(self.sender, sender_address(ipv6))
        for i, vm in enumerate(self.vms, start=1):
            self._address(vm, vm_address(i, ipv6))
        for k, v in (sender_sysctls or {}).items():
            self.sender.sysctl(k, v)
        for vm in self.vms:
            for k, v in (guest_sysctls or {}).items():
                vm.sysctl(k, v)
        self.impair_flags = impair
        self.seed = seed
        self.impairer = None
        self.vsnoopd = None
        self.captures = {}

    def _address(self, ns, addr):
        if self.ipv6:
            ns.ip("addr", "add", f"{addr}/64", "dev", "eth0", "nodad")
        else:
            ns.ip("addr", "add", f"{addr}/24", "dev", "eth0")

    def start_impair(self, flags=None, seed=None):
        if self.impair_ns is None:
            return
        self.impairer = Impairer(self.topo, self.impair_ns, self.impair_flags if flags is None else flags,
                                 self.seed if seed is None else seed, self.workdir)

    def stop_impair(self):
        stats = self.impairer.stop() if self.impairer else {}
        self.impairer = None
        return stats

    def start_vsnoopd(self, k=1, slice_ms=30, extra=(), pcap_out=True, guest_fields="", turn=1):
        args = ["--uplink", "up0"]
        for i in range(1, len(self.vms) + 1):
            spec = f"veth:vm{i}"
            if k > 1:
                spec += f",sched=rr:vms={k}:slice_ms={slice_ms}:turn={turn}"
            args += ["--guest", spec + guest_fields]
        self.pcap_path = os.path.join(self.workdir, "decisions.pcapng") if pcap_out else None
        if self.pcap_path:
            args += ["--pcap-out", self.pcap_path]
        if os.path.exists(os.path.join(self.workdir, "vsnoopd.sock")):
            os.unlink(os.path.join(self.workdir, "vsnoopd.sock"))
        self.vsnoopd = Vsnoopd(self.topo, self.host, args + list(extra), self.workdir, cpu=0)
        return self.vsnoopd

    def stop_vsnoopd(self):
        """Stops vsnoopd; returns its exit code (3 when it reported an internal bug)."""
        code = self.vsnoopd.stop()
        return code

    def start_captures(self, names=("snd", "up", "vm")):
        spec = {
            "snd": (self.sender, "eth0"),
            # vsnoopd sends with PACKET_QDISC_BYPASS, which packet taps on its own interface
            # do not see: its uplink output is captured at the far end of the link.
            "up": (self.impair_ns, "ih") if self.impair_ns else (self.sender, "eth0"),
            "vm": (self.vms[0], "eth0"),
        }
        for name in names:
            ns, ifname = spec[name]
            self.captures[name] = Capture(self.topo, ns, ifname, os.path.join(self.workdir, f"{name}.pcap"))

    def stop_captures(self):
        return {name: c.stop() for name, c in self.captures.items()}

    def capture_path(self, name):
        return self.captures[name].path


def new_workdir(tag):
    return tempfile.mkdtemp(prefix=f"vsnoop-safety-{tag}-")


def flow_of(vsnoopd, guest_port, remote_port=None):
    """The flow to a guest port (and remote port, when given) in vsnoopctl flows, or None."""
    # vsnoopctl lists 1000 flows unless told otherwise; a flooded table holds more.
    # Spoken directly (no vsnoopctl process per sample), with time to answer: a sanitizer
    # build under a flood and a transfer can take seconds to list a full table.
    reply = control_request(vsnoopd.control, {"cmd": "flows", "limit": 10000000}, timeout=15.0)
    for f in reply["flows"]:
        gport = int(f["guest_address"].rsplit(":", 1)[1])
        rport = int(f["remote"].rsplit(":", 1)[1])
        if gport == guest_port and (remote_port is None or rport == remote_port):
            return f
    return None


def progress(done, total, label, width=30, stream=sys.stderr):
    """A one-line progress bar, redrawn in place on a terminal, one line a step otherwise."""
    filled = int(width * done / max(total, 1))
    bar = "#" * filled + "." * (width - filled)
    text = f"[{bar}] {done}/{total} {label}"
    if stream.isatty():
        stream.write("\r\033[K" + text + ("\n" if done == total else ""))
    else:
        stream.write(text + "\n")
    stream.flush()


__all__ = ["Topology", "SafetyHost", "Sink", "checked_flow", "Capture", "Impairer", "MeasureLock",
           "IMPAIRMENTS", "TIMING_SENSITIVE", "require_root", "require_binaries", "new_workdir",
           "flow_of", "progress", "vmhwm_kib", "run", "wait_for", "vm_address", "sender_address",
           "paths", "shutil", "time", "IMPAIR", "FLOOD"]


if __name__ == "__main__":
    # safetylab.py --sweep: remove what killed safety-test runs left (every test also does
    # this when it starts).
    if sys.argv[1:] == ["--sweep"]:
        require_root()
        sweep_stale_namespaces()
    else:
        print(__doc__)
