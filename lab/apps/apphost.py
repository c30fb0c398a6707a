"""The host the application experiments run on, and what they share (the
measurement lock, results directories, vsnoopd's counters, tables).

    [client ns] eth0 --- up0 [host ns: vsnoopd, or a Linux bridge] vmN --- eth0 [VM ns] ...

The client namespace stands for machines outside the host (the load generator, the MPI
launcher); each VM namespace runs real servers (nginx, PostgreSQL, MPI ranks) on the real
Linux TCP stack. Traffic between two VMs crosses vsnoopd as well: both are guest ports, and
vSnoop acknowledges early on behalf of whichever VM receives.

Forwarding, chosen per measurement cell without touching the VMs' processes:
  bridge       the kernel's Linux bridge: no scheduling emulation, so this is the
               unconsolidated reference (one VM per core)
  vsnoop       vsnoopd with vSnoop on; k VMs per core emulated for every VM
  vsnoop-off   the same vsnoopd with --no-vsnoop (it forwards and observes only)

With k > 1, every VM gets its own schedule (`sched=rr:vms=k:...`): each shares its core with
k-1 imaginary CPU-burning neighbours, round-robin with `slice_ms` slices, and blocks when it
has had no network work for `idle_us` (docs/applications.md says why the
experiments pick the value they do). VM i starts at turn ((i-1) mod k) + 1, so the VMs' turns
do not start in lockstep.

Connections that exist when the forwarding changes are seen by vsnoopd mid-stream and stay
unaccelerated (docs/design.md), so the experiments restart the servers' client sides (the
web application's database pool, the MPI job) after each change.
"""
import contextlib
import datetime
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

LAB = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, LAB)

from vsnooplab import paths  # noqa: E402
from vsnooplab.hosts import Vsnoopd  # noqa: E402
from vsnooplab.load import ForeignLoad, loadavg  # noqa: E402
from vsnooplab.netns import Topology, run, wait_for  # noqa: E402,F401

REPO = paths.REPO
MEASURE_LOCK = "/tmp/vsnoop-measure.lock"
CLIENT_IP = "10.77.0.1"
TICK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "tick.py")
VSNOOPD_CPU = 0  # the host datapath on core 0; see each experiment for where the rest runs


def vm_ip(i):
    return f"10.77.0.{10 + i}"


# ---------------------------------------------------------------------------------------
# The host.

ALLOWED_CC = "/proc/sys/net/ipv4/tcp_allowed_congestion_control"


def allow_congestion_control(topo, name):
    """Adds `name` to the root namespace's allowed congestion controls until the topology
    closes (a namespace cannot otherwise make it its default); restores the list then,
    unless someone changed it meanwhile."""
    with open(ALLOWED_CC) as f:
        saved = f.read().split()
    if name in saved:
        return
    wanted = saved + [name]
    with open(ALLOWED_CC, "w") as f:
        f.write(" ".join(wanted))

    def restore():
        with open(ALLOWED_CC) as f:
            now = f.read().split()
        if sorted(now) == sorted(wanted):
            with open(ALLOWED_CC, "w") as f:
                f.write(" ".join(saved))
    topo.cleanups.insert(0, restore)

def kill_namespace_leftovers(topo):
    """Stops every process still inside one of the topology's namespaces: servers' workers
    and daemons that outlive the process the experiment started (nginx's workers, PostgreSQL's
    backends, Open MPI's orted and ranks). Each PID is one that `ip netns pids` lists for a
    namespace of this run; SIGTERM first, SIGKILL what is left after 3 s."""
    for p in list(topo.processes):
        topo.stop(p)

    def leftovers():
        pids = []
        for ns in topo.namespaces:
            out = run(["ip", "netns", "pids", ns.name], check=False)
            pids += [int(x) for x in out.split()]
        return [pid for pid in pids if pid != os.getpid()]

    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 1.0)):
        pids = leftovers()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while leftovers() and time.monotonic() < deadline:
            time.sleep(0.1)


class AppHost:
    """A client namespace and VM namespaces joined by vsnoopd or a Linux bridge."""

    def __init__(self, topo, vm_names, slice_ms=30, idle_us=0, buffer_bytes=None,
                 buffer_frames=None, sysctls=None, tick_us=500):
        self.topo = topo
        self.tick_us = tick_us
        self.ticker = None
        self.slice_ms = slice_ms
        self.idle_us = idle_us
        self.buffer_bytes = buffer_bytes
        self.buffer_frames = buffer_frames
        self.workdir = tempfile.mkdtemp(prefix="vsnoop-apps-")

        def stop_everything():
            # Late among the cleanups (servers have had their graceful stop), before the
            # namespaces are deleted; the working directory goes once nothing writes to it.
            kill_namespace_leftovers(topo)
            shutil.rmtree(self.workdir, ignore_errors=True)
        topo.cleanups.insert(0, stop_everything)
        self.client = topo.netns("cl")
        self.host = topo.netns("host")
        self.vms = {}
        self.ips = {}
        self.ports = {}  # VM name -> its port (interface) in the host namespace
        topo.veth(self.client, "eth0", self.host, "up0")
        self.client.ip("addr", "add", f"{CLIENT_IP}/24", "dev", "eth0")
        for i, name in enumerate(vm_names, start=1):
            ns = topo.netns(name)
            topo.veth(ns, "eth0", self.host, f"vm{i}")
            ns.ip("addr", "add", f"{vm_ip(i)}/24", "dev", "eth0")
            self.vms[name] = ns
            self.ips[name] = vm_ip(i)
            self.ports[name] = f"vm{i}"
        # Cubic everywhere: Linux's usual default, and the lab's. A namespace may only pick
        # a congestion control the root namespace allows, so cubic is allowed for the run.
        allow_congestion_control(topo, "cubic")
        for ns in [self.client, *self.vms.values()]:
            for key, value in {"net.ipv4.tcp_congestion_control": "cubic", **(sysctls or {})}.items():
                ns.sysctl(key, value)
        self.mode = None
        self.k = None
        self.vsnoopd = None
        self.guest_specs = {}
        self._bridge = False

    def ns(self, name):
        return self.vms[name]

    def forward(self, mode, k=1):
        """Switches the host to `mode` with k VMs per core (k is 1 for the bridge)."""
        assert mode in ("vsnoop", "vsnoop-off", "bridge"), mode
        if self.vsnoopd:
            self.vsnoopd.stop()
            self.vsnoopd = None
        if self.ticker:
            self.topo.stop(self.ticker)
            self.ticker = None
        ports = ["up0", *self.ports.values()]
        if mode == "bridge":
            assert k == 1, "the Linux bridge cannot emulate VMs sharing a core"
            if not self._bridge:
                self.host.ip("link", "add", "br0", "type", "bridge")
                self.host.ip("link", "set", "br0", "up")
                self._bridge = True
            for port in ports:
                self.host.ip("link", "set", port, "master", "br0")
        else:
            if self._bridge:
                self.host.ip("link", "del", "br0")
                self._bridge = False
            args = ["--uplink", "up0"]
            self.guest_specs = {}
            for i, (name, port) in enumerate(self.ports.items(), start=1):
                spec = f"veth:{port}"
                if k > 1:
                    turn = (i - 1) % k + 1
                    spec += (f",sched=rr:vms={k}:slice_ms={self.slice_ms}:turn={turn}"
                             f":neighbours=burn:idle_us={self.idle_us}")
                args += ["--guest", spec]
                self.guest_specs[name] = spec
            if self.buffer_bytes:
                args += ["--buffer-bytes", str(self.buffer_bytes)]
            if self.buffer_frames:
                args += ["--buffer-frames", str(self.buffer_frames)]
            if mode == "vsnoop-off":
                args.append("--no-vsnoop")
            self.vsnoopd = Vsnoopd(self.topo, self.host, args, self.workdir, cpu=VSNOOPD_CPU)
            if k > 1 and self.tick_us and not self.ticker:
                self.ticker = self.topo.spawn(self.client, [paths.PYTHON, TICK, "eth0",
                                                            str(self.tick_us)])
        self.mode = mode
        self.k = k
        self.wait_reachable()

    def wait_reachable(self, timeout=20):
        """Every VM answers a ping from the client and from the first VM."""
        targets = [(self.client, ip) for ip in self.ips.values()]
        first = next(iter(self.vms.values()))
        targets += [(first, ip) for name, ip in self.ips.items() if self.vms[name] is not first]

        def all_answer():
            return all(subprocess.run(["ip", "netns", "exec", ns.name, "ping", "-c", "1", "-W", "1",
                                       ip], capture_output=True).returncode == 0
                       for ns, ip in targets)
        wait_for(all_answer, timeout, "the VMs to answer ping")

    def stats(self):
        """vsnoopd's stats (None through the bridge)."""
        return self.vsnoopd.request(cmd="stats") if self.vsnoopd else None

    def flows(self, limit=4096):
        return self.vsnoopd.request(cmd="flows", limit=limit)["flows"] if self.vsnoopd else []

    def own_pids(self):
        """The experiment's processes: those it started, and every process inside one of its
        namespaces (servers' workers, Open MPI's daemonized orteds and ranks)."""
        pids = {p.pid for p in self.topo.processes if p.poll() is None}
        for ns in self.topo.namespaces:
            pids.update(int(x) for x in run(["ip", "netns", "pids", ns.name], check=False).split())
        return sorted(pids)

    def guest_name(self, vm):
        return self.guest_specs.get(vm)

    def close(self):
        if self.vsnoopd:
            self.vsnoopd.stop()
            self.vsnoopd = None


# ---------------------------------------------------------------------------------------
# vsnoopd's counters over one measurement.

GUEST_COUNTERS = ("frames_to_guest", "frames_delivered", "early_acks", "guest_acks_suppressed",
                  "window_updates", "frames_dropped_no_room", "frames_from_guest")
ENGINE_REASONS = ("early_ack", "in_order_not_acked", "no_payload", "suppressed",
                  "window_update", "beyond_window", "no_room", "out_of_order", "retransmission",
                  "unexpected_seq", "mid_stream", "handshake", "closing", "acceleration_off",
                  "zero_window", "window_would_shrink", "guest_data", "guest_ack_advances",
                  "guest_window_extends", "guest_sack", "nothing_acked")


def _engine_reasons(engine):
    """The engine's per-reason counters ({label: count}; absent labels are zero)."""
    return dict(engine.get("reasons", {}))


def snapshot(apphost):
    s = apphost.stats()
    if s is None:
        return None
    guests = {}
    for vm, spec in apphost.guest_specs.items():
        g = next(g for g in s["guests"] if g["name"] == spec)
        c = dict(g["counters"])
        c["turns"] = (g.get("schedule") or {}).get("turns", 0)
        c["running_ms"] = (g.get("schedule") or {}).get("running_ms", 0.0)
        guests[vm] = c
    return {"engine": _engine_reasons(s["engine"]), "guests": guests,
            "bridge": dict(s["bridge"])}


def counters_delta(before, after):
    """What vsnoopd counted between two snapshots: per VM and for the engine."""
    if before is None or after is None:
        return None
    out = {"guests": {}, "engine": {}}
    for vm, c in after["guests"].items():
        b = before["guests"].get(vm, {})
        out["guests"][vm] = {k: round(c.get(k, 0) - b.get(k, 0), 3)
                             for k in (*GUEST_COUNTERS, "turns", "running_ms") if k in c}
    for k in ENGINE_REASONS:
        d = after["engine"].get(k, 0) - before["engine"].get(k, 0)
        if d:
            out["engine"][k] = d
    return out


def flow_summary(apphost, vm_of_ip):
    """Per receiving VM: how many flows vsnoopd tracks in each state, how much data went to
    the VM on them and how much of it vSnoop acknowledged early. `vm_of_ip` maps a VM's
    address to its name."""
    summary = {}
    for f in apphost.flows():
        vm = vm_of_ip.get(f["guest_address"].rsplit(":", 1)[0], f["guest"])
        s = summary.setdefault(vm, {"flows": 0, "states": {}, "payload_bytes": 0,
                                    "early_acked_bytes": 0, "early_acks": 0,
                                    "flows_with_payload": 0, "max_flow_payload": 0})
        s["flows"] += 1
        s["states"][f["state"]] = s["states"].get(f["state"], 0) + 1
        st = f["stats"]
        s["payload_bytes"] += st["payload_bytes_to_guest"]
        s["early_acked_bytes"] += st["early_acked_bytes"]
        s["early_acks"] += st["early_acks"]
        if st["payload_bytes_to_guest"]:
            s["flows_with_payload"] += 1
        s["max_flow_payload"] = max(s["max_flow_payload"], st["payload_bytes_to_guest"])
    return summary


# ---------------------------------------------------------------------------------------
# Results, the lock, the load.

def results_dir(experiment, preset, name=None):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(REPO, "results", name or f"apps-{experiment}-{preset}-{stamp}")
    os.makedirs(path, exist_ok=True)
    return path


def uptime():
    return run(["uptime"]).strip()


@contextlib.contextmanager
def measurement_lock():
    """Holds /tmp/vsnoop-measure.lock: no other measurement on the machine meanwhile."""
    with open(MEASURE_LOCK, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[apps] waiting for {MEASURE_LOCK} (another measurement is running)", flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Progress:
    """One progress line, rewritten in place."""

    def __init__(self, total):
        self.total = total
        self.done = 0
        self.t0 = time.monotonic()

    def step(self, what):
        self.done += 1
        elapsed = time.monotonic() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        sys.stdout.write(f"\r[{self.done}/{self.total}] {elapsed:5.0f}s elapsed, ~{eta:4.0f}s left: "
                         f"{what[:70]:<70}")
        sys.stdout.flush()

    def end(self):
        sys.stdout.write("\n")
        sys.stdout.flush()


def write_jsonl(path, record):
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def environment(preset, extra=None):
    """What every run records about itself."""
    head = run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], check=False).strip()
    dirty = bool(run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                     check=False).strip())
    return {"preset": preset, "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "uptime": uptime(), "loadavg": loadavg(), "commit": head + ("+dirty" if dirty else ""),
            "vsnoopd": paths.VSNOOPD, "kernel": os.uname().release, **(extra or {})}


def format_table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).rjust(w) for x, w in zip(r, widths))
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def markdown_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


__all__ = ["AppHost", "Topology", "ForeignLoad", "measurement_lock",
           "results_dir", "snapshot", "counters_delta", "flow_summary", "uptime", "Progress",
           "write_jsonl", "environment", "format_table", "markdown_table", "run", "wait_for",
           "CLIENT_IP", "vm_ip", "REPO", "kill_namespace_leftovers"]
