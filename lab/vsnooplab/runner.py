"""Runs a preset's flows and appends one JSON line per flow to results/<run>/raw.jsonl.

Resumable: a flow whose key already has a good line is not run again (unless it was
measured while other jobs loaded the machine and --redo-loaded asks for it). Measurements
hold /tmp/vsnoop-measure.lock (one host group at a time), so two measurements on this
machine never overlap.
"""
import datetime
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import zlib

from . import ceiling, hosts, load, matrix, paths, qemu, transfer
from .netns import Topology
from .observe import FlowObserver

LOCK_PATH = "/tmp/vsnoop-measure.lock"
HOST_CPU = 0  # sender, vsnoopd, the lab itself
GUEST_CPU = 1  # the VMs' core (emulated: the receiving namespace's application)
SENDER_WMEM = "4096 16384 33554432"  # the sender never limits a flow (docs/results.md)
STALL_SECONDS = 60  # a flow that moves no data for this long has stalled


class MeasureLock:
    """The machine-wide measurement lock. Re-entrant within this process: a run that holds
    it for its whole length (--hold-lock) does not wait for it again per host group."""

    _depth = 0
    _file = None

    def __enter__(self):
        if MeasureLock._depth == 0:
            MeasureLock._file = open(LOCK_PATH, "a")
            fcntl.flock(MeasureLock._file, fcntl.LOCK_EX)
        MeasureLock._depth += 1
        return self

    def __exit__(self, *exc):
        MeasureLock._depth -= 1
        if MeasureLock._depth == 0:
            fcntl.flock(MeasureLock._file, fcntl.LOCK_UN)
            MeasureLock._file.close()
            MeasureLock._file = None


def read_records(path):
    records = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass  # a line cut short by an interrupted run
    return records


def latest_by_key(records):
    out = {}
    for r in records:
        out[r["key"]] = r
    return out


class Progress:
    """A plain-text progress bar on stderr: [#####.....] 37/120 flows, eta 4m."""

    def __init__(self, flows, stream=sys.stderr):
        self.total_cost = sum(self._cost(f) for f in flows)
        self.total = len(flows)
        self.done = 0
        self.done_cost = 0
        self.t0 = time.monotonic()
        self.waited = 0.0  # time spent waiting for the measurement lock: not in the eta
        self._wait_start = None
        self.stream = stream
        self.tty = stream.isatty()

    @staticmethod
    def _cost(flow):
        # Slower cells (larger flows, more VMs per core) take longer: a rough weight.
        return 2 * matrix.MB + flow.flow_bytes * (1 + flow.k)

    def update(self, flow=None, note=""):
        if flow is not None:
            self.done += 1
            self.done_cost += self._cost(flow)
        frac = self.done_cost / self.total_cost if self.total_cost else 1.0
        elapsed = time.monotonic() - self.t0 - self.waited
        eta = elapsed / frac - elapsed if frac > 0 else 0
        bar = "#" * int(frac * 30) + "." * (30 - int(frac * 30))
        text = f"[{bar}] {self.done}/{self.total} flows, eta {format_duration(eta)}"
        if note:
            text += f"  {note}"
        if self.tty:
            self.stream.write("\r" + text[:150].ljust(150))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def waiting(self, what):
        self._wait_start = time.monotonic()
        self.update(note=f"waiting for {what}")

    def done_waiting(self):
        if self._wait_start is not None:
            self.waited += time.monotonic() - self._wait_start
            self._wait_start = None

    def finish(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def format_duration(seconds):
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def size_label(n):
    return f"{n // matrix.MB}MB" if n >= matrix.MB else f"{n // matrix.KB}KB"


def flow_timeout(flow_bytes):
    # 0.5 Mbit/s at worst, and at least two minutes.
    return max(120.0, min(1200.0, flow_bytes * 8 / 0.5e6))


# ---- Hosts -------------------------------------------------------------------------------


class EmulatedGroupHost:
    def __init__(self, topo, preset, group):
        v = group.variant
        passes = v.wake_passes or preset.wake_passes
        rmem = matrix.GUEST_DEFAULT_RMEM if not v.rmem_max else f"4096 131072 {v.rmem_max}"
        guest_sysctls = {"net.ipv4.tcp_rmem": rmem, "net.ipv4.tcp_no_metrics_save": 1}
        sender_sysctls = {"net.ipv4.tcp_no_metrics_save": 1, "net.ipv4.tcp_wmem": SENDER_WMEM}
        self.host = hosts.EmulatedHost(
            topo, mode="bridge" if group.attachment == "bridge" else "vsnoop", vms=group.k,
            slice_ms=preset.slice_ms, neighbours=preset.neighbours, idle_us=preset.idle_us,
            buffer_bytes=v.buffer_bytes, buffer_frames=v.buffer_frames, offloads=v.gso,
            guest_sysctls=guest_sysctls, sender_sysctls=sender_sysctls,
            sched_extra=f"wake_passes={passes}" if group.k > 1 else "",
            vsnoopd_cpu=HOST_CPU, extra_args=v.vsnoopd_args)
        self.sink = transfer.Sink(topo, self.host.vms[0], cpu=GUEST_CPU)
        self.sender = self.host.sender
        self.vsnoopd = self.host.vsnoopd
        self.guest_name = self.host.guest_names[0] if self.host.guest_names else None
        self.receiver_ip = hosts.vm_address(1)
        self.config = {"buffer_bytes": v.buffer_bytes, "buffer_frames": v.buffer_frames,
                       "guest_tcp_rmem": rmem, "schedule": self.guest_name,
                       "frames": "GSO (offloads on)" if v.gso else "MTU (offloads off)"}

    def own_pids(self):
        pids = [self.sink.proc.pid]
        if self.vsnoopd:
            pids.append(self.vsnoopd.proc.pid)
        return pids

    def vcpu_schedstat(self):
        return None

    def receive(self, timeout):
        return self.sink.next_result()

    def recover(self):
        return False  # the caller rebuilds the host

    def close(self):
        self.sink.stop()
        self.host.close()


class QemuGroupHost:
    """A QemuHost kept across groups that share k and the variant's host settings; the
    receiver is re-attached for each group."""

    def __init__(self, topo, preset, group, workdir):
        v = group.variant
        self.variant = v
        self.k = group.k
        receiver_args = ["--sysctl", "net.ipv4.tcp_no_metrics_save=1"]
        if v.rmem_max:
            receiver_args += ["--tcp-rmem-max", str(v.rmem_max)]
        self.qhost = qemu.QemuHost(topo, workdir, slice_ms=preset.slice_ms, guest_cpu=GUEST_CPU,
                                   host_cpu=HOST_CPU, io_threads=v.io_threads,
                                   vsnoopd_args=v.vsnoopd_args,
                                   receiver_args=receiver_args,
                                   receiver_env={"VSNOOP_GUEST_NIC_OPTS": v.nic_opts})
        for k, val in (("net.ipv4.tcp_no_metrics_save", 1), ("net.ipv4.tcp_wmem", SENDER_WMEM)):
            self.qhost.sender.sysctl(k, val)
        self.qhost.set_neighbours(group.k - 1)
        self.sender = self.qhost.sender
        self.receiver_ip = self.qhost.RECEIVER_IP
        self.attachment = None

    def matches(self, group):
        return group.k == self.k and group.variant == self.variant

    def attach(self, group):
        v = group.variant
        self.qhost.attach(group.attachment, buffer_bytes=v.buffer_bytes,
                          buffer_frames=v.buffer_frames)
        self.attachment = group.attachment
        self.vsnoopd = self.qhost.vsnoopd
        self.guest_name = self.qhost.guest_name
        self.config = {"buffer_bytes": v.buffer_bytes, "buffer_frames": v.buffer_frames,
                       "guest_tcp_rmem_max": v.rmem_max or 6291456, "io_threads": v.io_threads,
                       "nic_opts": v.nic_opts, "attachment": group.attachment,
                       "rr_slice_ms": self.qhost.rr.slice_ms}

    def own_pids(self):
        pids = [g.pid for g in self.qhost.neighbours]
        if self.qhost.receiver:
            pids.append(self.qhost.receiver.pid)
        if self.vsnoopd:
            pids.append(self.vsnoopd.proc.pid)
        return pids

    def vcpu_schedstat(self):
        return self.qhost.vcpu_schedstat()

    def receive(self, timeout):
        return self.qhost.receiver.next_sink_result(timeout=timeout)

    def recover(self):
        """After a stalled flow: reset the connection from the sender's side, so the guest's
        sink finishes it and listens again; else restart the receiver."""
        self.sender.exec("ss", "-K", "dst", self.receiver_ip, check=False)
        try:
            self.qhost.receiver.next_sink_result(timeout=30)
            return True
        except TimeoutError:
            return False

    def close(self):
        self.qhost.close()


# ---- The run -----------------------------------------------------------------------------


class Lab:
    def __init__(self, preset, groups, out_dir, redo_loaded=None, log=sys.stderr,
                 hold_lock=False):
        self.hold_lock = hold_lock
        self.preset = preset
        self.groups = groups
        self.out_dir = out_dir
        self.raw_path = os.path.join(out_dir, "raw.jsonl")
        self.redo_loaded = redo_loaded
        self.log = log
        os.makedirs(out_dir, exist_ok=True)

    def pending(self):
        done = latest_by_key(read_records(self.raw_path))
        out = []
        for g in self.groups:
            flows = []
            for f in g.flows:
                r = done.get(f.key)
                if r is None:
                    flows.append(f)
                elif self.redo_loaded is not None and r.get("foreign_cpu", 0) > self.redo_loaded:
                    flows.append(f)
            if flows:
                out.append((g, flows))
        return out

    def write(self, record):
        with open(self.raw_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def run(self):
        os.sched_setaffinity(0, {HOST_CPU})
        work = self.pending()
        all_flows = [f for _, flows in work for f in flows]
        if not all_flows:
            print("nothing to do: every flow of this run has a result", file=self.log)
            return
        progress = Progress(all_flows, self.log)
        progress.update(note="setting up")
        workdir = tempfile.mkdtemp(prefix="vsnoop-lab-", dir="/tmp")
        qhost = None
        topo = None
        qemu_lock = None  # qemu guests keep the core busy under SCHED_RR: lock while they live
        whole_run_lock = None
        try:
            if self.hold_lock:
                progress.waiting(f"the measurement lock ({LOCK_PATH})")
                whole_run_lock = MeasureLock().__enter__()
                progress.done_waiting()
            for group, flows in work:
                if self.preset.vm_kind == "qemu":
                    if qhost is None or not qhost.matches(group):
                        if qhost:
                            qhost.close()
                            topo.close()
                            qhost = None
                        if qemu_lock is None:
                            progress.waiting(f"the measurement lock ({LOCK_PATH})")
                            qemu_lock = MeasureLock().__enter__()
                            progress.done_waiting()
                        progress.update(note=f"booting {group.k} qemu guest(s)")
                        topo = Topology("vsl")
                        qhost = QemuGroupHost(topo, self.preset, group, workdir)
                    qhost.attach(group)
                    self._run_group(group, flows, lambda: qhost, progress)
                    continue
                progress.waiting(f"the measurement lock ({LOCK_PATH})")
                with MeasureLock():
                    progress.done_waiting()
                    self._run_emulated_group(group, flows, progress)
        finally:
            if qhost:
                qhost.close()
            if topo:
                topo.close()
            if qemu_lock:
                qemu_lock.__exit__(None, None, None)
            if whole_run_lock:
                whole_run_lock.__exit__(None, None, None)
            shutil.rmtree(workdir, ignore_errors=True)
            progress.finish()

    def _run_emulated_group(self, group, flows, progress):
        state = {}

        def host():
            if "host" not in state:
                state["topo"] = Topology("vsl")
                state["host"] = EmulatedGroupHost(state["topo"], self.preset, group)
            return state["host"]

        def rebuild():
            if "host" in state:
                state.pop("host").close()
                state.pop("topo").close()

        try:
            self._run_group(group, flows, host, progress, rebuild=rebuild)
        finally:
            rebuild()

    def ping(self, group, h):
        """Ping RTT to the receiving VM with no flow running: the scheduling delay alone."""
        out = h.sender.exec("ping", "-q", "-c", "30", "-i", "0.05", "-W", "2", h.receiver_ip,
                            check=False)
        rec = {"group": group.label, "vm_kind": group.vm_kind, "k": group.k,
               "attachment": group.attachment, "variant": group.variant.name,
               "time": datetime.datetime.now().isoformat(timespec="seconds")}
        for line in out.splitlines():
            if line.startswith("rtt") or line.startswith("round-trip"):
                mn, avg, mx = line.split("=")[1].split("/")[:3]
                rec.update(min_ms=float(mn), avg_ms=float(avg), max_ms=float(mx))
            if "packet loss" in line:
                rec["summary"] = line.strip()
        with open(os.path.join(self.out_dir, "pings.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")

    def _run_group(self, group, flows, get_host, progress, rebuild=None):
        pinged = False
        for flow in flows:
            h = get_host()
            if not pinged:
                if h.vsnoopd:
                    h.vsnoopd.set_vsnoop(False)
                self.ping(group, h)
                pinged = True
            note = (f"{group.vm_kind} k={flow.k} {flow.mode} {size_label(flow.flow_bytes)} "
                    f"{flow.cc} {group.variant.name} #{flow.rep + 1}")
            progress.update(note=note)
            record = self._run_flow(h, group, flow)
            self.write(record)
            progress.update(flow, note=f"{note}: " + (f"{record['mbps']:.1f} Mbit/s" if record["ok"]
                                                       else "FAILED"))
            if not record["ok"]:
                recovered = h.recover()
                if not recovered:
                    if rebuild:
                        rebuild()
                    elif group.vm_kind == "qemu":
                        h.attach(group)
            time.sleep(0.2)

    def _run_flow(self, h, group, flow):
        record = {"key": flow.key, **flow.as_dict(), "preset": self.preset.name,
                  "attachment": group.attachment, "host": h.config,
                  "time": datetime.datetime.now().isoformat(timespec="seconds"),
                  "loadavg": load.loadavg()}
        seed = zlib.crc32(flow.key.encode())  # the payload, reproducible per flow
        if h.vsnoopd:
            h.vsnoopd.set_vsnoop(flow.mode == "vsnoop")
            before = h.vsnoopd.request(cmd="stats")
        observer = None
        if h.vsnoopd and flow.k > 1:
            observer = FlowObserver(h.vsnoopd.control, h.guest_name,
                                    vcpu_schedstat=h.vcpu_schedstat()).start()
        foreign = load.ForeignLoad(h.own_pids).start()
        timeout = flow_timeout(flow.flow_bytes)
        try:
            sent = transfer.send(h.sender, h.receiver_ip, flow.flow_bytes, seed=seed, cc=flow.cc,
                                 timeout=STALL_SECONDS, total_timeout=timeout, cpu=HOST_CPU)
            got = h.receive(timeout=120)
            error = None
            if got["bytes"] != flow.flow_bytes or got["sha256"] != sent["sha256"]:
                error = (f"receiver got {got['bytes']} bytes, sha256 {got['sha256'][:16]}..., "
                         f"sent {flow.flow_bytes}, {sent['sha256'][:16]}...")
        except Exception as e:  # a stalled or broken flow is a result too
            sent, got = None, None
            error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:300]}"
        record["foreign_cpu"] = round(foreign.stop(), 3)
        samples = observer.stop() if observer else []
        if observer:
            record["observer_errors"] = observer.errors
        record["ok"] = error is None
        record["error"] = error
        if sent:
            for k in ("mbps", "seconds", "rtt_ms_mean", "rtt_ms_median", "rtt_ms_max",
                      "min_rtt_ms", "retransmits", "cwnd_max", "local_port"):
                record[k] = sent.get(k)
            record["receiver_bytes"] = got["bytes"] if got else None
            record["sha256_ok"] = bool(got) and got["sha256"] == sent["sha256"]
        if h.vsnoopd:
            try:
                after = h.vsnoopd.request(cmd="stats")
                record["vsnoopd"] = counter_delta(before, after, h.guest_name)
                if not record["ok"]:
                    record["flows_at_failure"] = h.vsnoopd.request(cmd="flows")["flows"][:4]
            except Exception as e:
                record["vsnoopd_error"] = str(e)
        if not record["ok"]:
            record["sender_socket"] = h.sender.exec("ss", "-tino", check=False)[-1500:]
        if sent and samples:
            try:
                record["ceiling"] = flow_ceiling(samples, sent, flow, h, record.get("vsnoopd"))
            except Exception:
                record["ceiling_error"] = traceback.format_exc()[-500:]
        record["samples"] = len(samples)
        return record


def counter_delta(before, after, guest_name):
    def guest(stats):
        for g in stats["guests"]:
            if g["name"] == guest_name:
                return g
        return None

    out = {}
    gb, ga = guest(before), guest(after)
    if gb and ga:
        for k, v in ga["counters"].items():
            if k == "buffer_high_water_bytes":
                out[k] = v
            else:
                out[k] = v - gb["counters"].get(k, 0)
        if "schedule" in ga:
            out["turns"] = ga["schedule"]["turns"] - gb["schedule"]["turns"]
            out["running_ms"] = round(ga["schedule"]["running_ms"] - gb["schedule"]["running_ms"], 1)
    # Datapath-wide counters that should stay at zero (internal_bugs: vsnoopd caught itself
    # about to acknowledge a frame its buffer refused), and the uplink's drops.
    bb, ba = before.get("bridge", {}), after.get("bridge", {})
    for k in ("internal_bugs", "frames_runt"):
        if k in ba:
            out["bridge_" + k] = ba[k] - bb.get(k, 0)
    eb, ea = before["engine"], after["engine"]
    for k in ("early_acks", "window_updates", "guest_acks_suppressed"):
        if k in ea:
            out["engine_" + k] = ea[k] - eb.get(k, 0)
    for field in ("reasons", "transitions"):
        if field in ea:
            out[field] = {k: v - eb.get(field, {}).get(k, 0) for k, v in ea[field].items()
                          if v - eb.get(field, {}).get(k, 0)}
    return out


def flow_ceiling(samples, sent, flow, h, counters):
    """vSnoop's ceiling for this flow (ceiling.py), from the observed windows and cycles."""
    frame = 1514
    if counters and counters.get("frames_delivered"):
        frame = counters["bytes_delivered"] / counters["frames_delivered"]
    payload = ceiling.buffer_payload(h.config["buffer_bytes"], h.config["buffer_frames"],
                                     int(frame))
    return ceiling.compute(samples, sent["local_port"], sent["t_connect"], sent["t_done"],
                           flow.flow_bytes, payload)
