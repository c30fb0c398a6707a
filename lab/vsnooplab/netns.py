"""Network namespaces, veth pairs and processes that clean up after themselves.

Everything a Topology creates carries a per-run prefix and is recorded as it is made;
close() (also run at exit and on SIGTERM/SIGINT) stops the processes it started, by PID,
and deletes its namespaces, which takes their interfaces with them. Nothing is created in
the root namespace.
"""
import atexit
import os
import signal
import subprocess
import time

_LIVE = []  # open topologies, closed at exit or on a signal


def _close_all(*_):
    for t in list(_LIVE):
        t.close()


def _on_signal(signum, frame):
    # A second Ctrl-C while cleaning up must not leave half of it undone.
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    _close_all()
    raise SystemExit(128 + signum)


atexit.register(_close_all)
for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_s, _on_signal)


def run(argv, check=True, **kw):
    """Runs a command and returns its stdout; raises with its stderr on failure."""
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


class Namespace:
    def __init__(self, topology, name):
        self.topology = topology
        self.name = name

    def ip(self, *args, check=True):
        return run(["ip", "-n", self.name, *args], check=check)

    def exec(self, *argv, check=True, **kw):
        return run(["ip", "netns", "exec", self.name, *argv], check=check, **kw)

    def sysctl(self, key, value):
        self.exec("sysctl", "-qw", f"{key}={value}")

    def spawn(self, *argv, **kw):
        return self.topology.spawn(self, argv, **kw)


class Topology:
    def __init__(self, tag="vsl"):
        # Short prefix: interface names are limited to 15 bytes.
        self.prefix = f"{tag}{os.getpid() % 100000}"
        self.namespaces = []
        self.processes = []
        self.cleanups = []  # callables run first at close (stopping VMs, say)
        _LIVE.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def netns(self, name):
        full = f"{self.prefix}-{name}"
        run(["ip", "netns", "add", full])
        ns = Namespace(self, full)
        self.namespaces.append(ns)
        ns.ip("link", "set", "lo", "up")
        return ns

    def veth(self, ns_a, name_a, ns_b, name_b, up=True, offloads=True):
        run(["ip", "link", "add", name_a, "netns", ns_a.name, "type", "veth",
             "peer", "name", name_b, "netns", ns_b.name])
        for ns, name in ((ns_a, name_a), (ns_b, name_b)):
            if not offloads:
                ns.exec("ethtool", "-K", name, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
                        check=False)
            if up:
                ns.ip("link", "set", name, "up")

    def spawn(self, ns, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cpu=None, **kw):
        """Starts argv inside ns; `ip netns exec` execs the command, so the PID is its own."""
        cmd = ["ip", "netns", "exec", ns.name]
        if cpu is not None:
            cmd += ["taskset", "-c", str(cpu)]
        p = subprocess.Popen(cmd + list(argv), stdout=stdout, stderr=stderr, text=True, **kw)
        self.processes.append(p)
        return p

    def stop(self, p, timeout=5.0, sig=signal.SIGTERM):
        """Ends a process it spawned: `sig`, then SIGKILL after `timeout` seconds."""
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.processes:
            self.processes.remove(p)

    def close(self):
        for c in reversed(self.cleanups):
            try:
                c()
            except Exception as e:  # keep cleaning up
                print(f"cleanup failed: {e}")
        self.cleanups = []
        for p in reversed(list(self.processes)):
            self.stop(p)
        for ns in reversed(self.namespaces):
            run(["ip", "netns", "del", ns.name], check=False)
        self.namespaces = []
        if self in _LIVE:
            _LIVE.remove(self)


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
