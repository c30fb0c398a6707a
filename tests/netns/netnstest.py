"""What the network-namespace tests of vsnoopd share: the environment check (exit 77, the
ctest skip code, when not root or namespaces are unavailable), a TestCase that builds lab
hosts and checks vsnoopd's exit, and readers for the counters the tests compare.

The binaries under test come from $VSNOOP_BUILD (the build directory: ctest sets it, so
the sanitizer build's vsnoopd is tested in the sanitizer run).

Nothing outlives a test process. Each test's Topology removes its namespaces (and with
them every link) and stops its processes when the test ends, pass or fail. Every temporary
file of the run, the lab's included, lives under one directory. SIGTERM, SIGINT and SIGHUP
kill what runs in this run's namespaces, close the open topologies and end the process at
once (the lab's own handler raises SystemExit, which unittest records as the current
test's error before carrying on with the next test). And a guardian process, in a session
of its own so that a kill aimed at the test's process group spares it, waits for the test
process to end however it ends (SIGKILL from a ctest timeout included), then kills what is
left in this run's namespaces, deletes them, and removes the directory.

Known vsnoopd bugs have tests that fail while the bug is there; they are skipped (the skip
names the bug) unless VSNOOP_RUN_KNOWN_BUGS=1, which runs them as ordinary tests.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "lab"))

from vsnooplab import netns as lab_netns  # noqa: E402
from vsnooplab import paths  # noqa: E402
from vsnooplab.hosts import EmulatedHost, Vsnoopd, sender_address, vm_address  # noqa: E402,F401
from vsnooplab.netns import Topology, run, wait_for  # noqa: E402,F401

SKIP = 77
TAG = "vn"  # namespace prefix of these tests: vn<pid>-snd, vn<pid>-host, vn<pid>-vm1, ...
TOOLS = ("ip", "tcpdump", "tshark", "nstat", "ethtool", "socat", "tc", "ss")

# Emulated scheduling of the paper's case: k = 3 VMs on one core, 30 ms round-robin slices,
# the VM under test first in the round, and it yields the core as soon as it has no work.
K3 = {"vms": 3, "slice_ms": 30, "idle_us": 0}
K1 = {"vms": 1}

# What a drop inside the VM's TCP stack shows up as (RFC-less, Linux's own MIB names).
VM_DROP_COUNTERS = ("TcpExtTCPRcvQDrop", "TcpExtTCPBacklogDrop", "TcpExtTCPZeroWindowDrop",
                    "TcpExtTCPOFODrop")

# Sanitizer and internal-invariant reports in vsnoopd's log.
BAD_LOG = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
                     r"internal bug at ")

RUN_KNOWN_BUGS = os.environ.get("VSNOOP_RUN_KNOWN_BUGS") == "1"


def known_bug(summary):
    """Marks a test that shows a vsnoopd bug (the test's comment says what happens and what
    should): skipped with `summary` as the reason, run when VSNOOP_RUN_KNOWN_BUGS=1."""
    if RUN_KNOWN_BUGS:
        return lambda test: test
    return unittest.skip(f"known bug: {summary}")


def sanitized():
    """Whether the vsnoopd under test is a sanitizer build (slower: the tests keep their
    largest flows for the optimised build). VSNOOP_SANITIZED=1/0 decides; otherwise the
    build directory's CMake cache does."""
    forced = os.environ.get("VSNOOP_SANITIZED")
    if forced is not None:
        return forced not in ("", "0")
    try:
        with open(os.path.join(paths.BUILD, "CMakeCache.txt")) as f:
            cache = f.read()
    except OSError:
        return False
    return re.search(r"^VSNOOP_SANITIZE:BOOL=(ON|1|TRUE|YES|Y)$", cache, re.M | re.I) is not None


def _run_prefix():
    """The prefix this process's Topology names its namespaces with."""
    probe = Topology(TAG)
    probe.close()
    return probe.prefix


def _guard(prefix, tmp_root):
    """The guardian's body: blocks until the test process ends (its end of the pipe on our
    stdin closes, however it died), then removes what the run left behind."""
    for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    sys.stdin.buffer.read()
    sweep(prefix)
    shutil.rmtree(tmp_root, ignore_errors=True)
    return 0


def _running(pid):
    """Whether a process exists and has not exited (a zombie waits for its parent only)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def sweep(prefix):
    """Kills every process left in this run's namespaces (all of them started by the run:
    vsnoopd, tcpdump, flow ends, qemu), then deletes the namespaces and their links."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in listing.splitlines()
             if line.split() and line.split()[0].startswith(prefix + "-")]
    pids = set()
    for ns in names:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        pids.update(int(p) for p in out.split())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        pids = {p for p in pids if _running(p)}
        time.sleep(0.05)
    for ns in names:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return names


_guardian = None
_prefix = None


def _on_signal(signum, _frame):
    """Kills everything in this run's namespaces, flows run with `ns.exec` included (the
    Topology does not track those), then lets the Topologies finish (qemu guests' files,
    the namespaces), and ends the process."""
    print(f"netnstest: signal {signum}: removing this run's namespaces and exiting", flush=True)
    sweep(_prefix)
    lab_netns._close_all()
    os._exit(128 + signum)


def require_environment():
    """Exits with 77 (skipped) unless this process may create network namespaces; fails
    when the binaries or tools the tests need are missing (that is a broken set-up).
    Then sets up the run's clean-up: the temporary directory, the signal handlers and the
    guardian (see the module's docstring). Several test modules in one process: once."""
    global _guardian, _prefix
    if _guardian is not None:
        return
    if os.geteuid() != 0:
        print("SKIP: the network-namespace tests need root")
        sys.exit(SKIP)
    probe = f"vsnoop-probe{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        print("SKIP: cannot create network namespaces here")
        sys.exit(SKIP)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    missing = [t for t in TOOLS if shutil.which(t) is None]
    missing += [p for p in (paths.VSNOOPD, paths.VSNOOPCTL) if not os.access(p, os.X_OK)]
    if missing:
        print(f"FAIL: missing {', '.join(missing)} (VSNOOP_BUILD={paths.BUILD}; "
              "scripts/install-deps.sh installs the tools)")
        sys.exit(1)
    tmp_root = tempfile.mkdtemp(prefix=f"vsnoop-netns-{os.getpid()}-")
    tempfile.tempdir = tmp_root  # every mkdtemp of the run, the lab's too, goes in here
    _prefix = _run_prefix()
    # The guardian reads the pipe; its write end stays open here, unused and not inherited
    # by any child, until this process ends.
    read_end, write_end = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.posix_spawn(paths.PYTHON, [paths.PYTHON, os.path.abspath(__file__), "--guard", _prefix,
                                  tmp_root], os.environ,
                   file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0),
                                 (os.POSIX_SPAWN_DUP2, devnull, 1),
                                 (os.POSIX_SPAWN_DUP2, devnull, 2)],
                   setsid=True)
    os.close(read_end)
    os.close(devnull)
    _guardian = write_end
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)


def start_vsnoopd(topo, ns, args, workdir):
    """A vsnoopd (lab Vsnoopd) that answers on its control socket. The lab waits only for
    the socket's path, which exists a moment before vsnoopd listens on it; a request in
    that moment is refused."""
    v = Vsnoopd(topo, ns, args, workdir)
    wait_until_answering(v)
    return v


def wait_until_answering(vsnoopd, timeout=10):
    def answers():
        if vsnoopd.proc.poll() is not None:
            raise RuntimeError(f"vsnoopd exited ({vsnoopd.proc.returncode})")
        try:
            vsnoopd.request(cmd="stats")
            return True
        except OSError:
            return False
    wait_for(answers, timeout, "vsnoopd to answer on its control socket")


def figure(text):
    """A measured value, printed for the record (ctest -V shows it): not a claim."""
    print(f"figure: {text}", flush=True)


def guest_counters(vsnoopd, index=0):
    return vsnoopd.stats()["guests"][index]["counters"]


def flow_keys(vsnoopd):
    return {(f["remote"], f["guest_address"]) for f in vsnoopd.flows()}


def new_flow(vsnoopd, known_keys):
    """The one flow in vsnoopd's table that is not in known_keys (from flow_keys before the
    transfer); fails if there is not exactly one."""
    fresh = [f for f in vsnoopd.flows() if (f["remote"], f["guest_address"]) not in known_keys]
    if len(fresh) != 1:
        raise AssertionError(f"expected one new flow in vsnoopd's table, found {fresh}")
    return fresh[0]


def endpoint(address, port):
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def nstat(ns):
    """Every SNMP/netstat counter of the namespace, absolute (nstat -a), without touching
    nstat's history file (-s)."""
    return json.loads(ns.exec("nstat", "-asz", "--json"))["kernel"]


def link_stats(ns, ifname):
    return json.loads(ns.ip("-s", "-j", "link", "show", ifname))[0]["stats64"]


class VsnoopdTestCase(unittest.TestCase):
    """Each test gets its own Topology (namespaces named with a per-process prefix) and a
    scratch directory; both go when the test ends, whatever happened. A vsnoopd started
    through host() must exit 0 on SIGTERM with a log free of sanitizer reports."""

    def setUp(self):
        self.started = time.monotonic()
        self.topo = Topology("vn")
        self.addCleanup(self.topo.close)
        self.tmp = tempfile.mkdtemp(prefix="vsnoop-netns-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def tearDown(self):
        figure(f"{self.id()} took {time.monotonic() - self.started:.1f} s")

    def host(self, mode="vsnoop", sched=K1, **kw):
        h = EmulatedHost(self.topo, mode=mode, vms=sched["vms"], slice_ms=sched.get("slice_ms", 30),
                         idle_us=sched.get("idle_us"), **kw)
        self.addCleanup(h.close)
        if h.vsnoopd is not None:
            self.addCleanup(self.check_clean_exit, h.vsnoopd)
            wait_until_answering(h.vsnoopd)
        return h

    def start_vsnoopd(self, ns, args, workdir=None):
        """A vsnoopd started by the test itself, checked like host()'s when the test ends."""
        v = start_vsnoopd(self.topo, ns, args, workdir or tempfile.mkdtemp(dir=self.tmp))
        self.addCleanup(self.check_clean_exit, v)
        return v

    def check_clean_exit(self, vsnoopd):
        """Stops vsnoopd (SIGTERM) unless it has stopped; it must have exited 0 and logged no
        sanitizer report or internal bug."""
        code = vsnoopd.stop()
        with open(vsnoopd.log_path, errors="replace") as f:
            log = f.read()
        bad = BAD_LOG.search(log)
        if code != 0 or bad:
            raise AssertionError(f"vsnoopd exited {code}"
                                 f"{' and logged ' + repr(bad.group(0)) if bad else ''}; "
                                 f"its log ends with:\n{log[-4000:]}")

    def assertNoVmDrops(self, h, vm=0):
        counters = nstat(h.vms[vm])
        drops = {k: counters.get(k, 0) for k in VM_DROP_COUNTERS}
        self.assertEqual(drops, {k: 0 for k in VM_DROP_COUNTERS}, "the VM's TCP stack dropped")
        tx = link_stats(h.host, f"vm{vm + 1}")["tx"]
        self.assertEqual(tx["dropped"], 0, f"host-side veth vm{vm + 1} dropped on transmit: {tx}")
        self.assertEqual(tx["errors"], 0, f"host-side veth vm{vm + 1} transmit errors: {tx}")


def delivery_gaps(sent, received):
    """Checks that `received` is `sent` with some entries left out: same order, nothing
    added, nothing twice that was sent once. Returns the entries left out; raises
    AssertionError, naming the first offending entry, otherwise."""
    missing = []
    i = 0
    for j, item in enumerate(received):
        start = i
        while i < len(sent) and sent[i] != item:
            i += 1
        if i == len(sent):
            raise AssertionError(
                f"received segment #{j} {item} does not follow the sender's order (or was "
                f"never sent, or arrived more often than sent); sent from #{start}: "
                f"{sent[start:start + 5]}, received before it: {received[max(0, j - 3):j]}")
        missing.extend(sent[start:i])
        i += 1
    missing.extend(sent[i:])
    return missing


if __name__ == "__main__" and sys.argv[1:2] == ["--guard"]:
    sys.exit(_guard(sys.argv[2], sys.argv[3]))
