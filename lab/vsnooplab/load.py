"""How busy the machine was with other work while a flow ran.

The lab itself loads both cores (sender, vsnoopd, sink, qemu guests), so the load average
says little. ForeignLoad measures the CPU time the whole machine spent busy (/proc/stat)
minus the CPU time of the lab's own processes, over the flow: the share of a CPU that
other jobs took. A flow measured while others took much is worth measuring again.
"""
import os
import time

TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    # guest and guest_nice are already counted in user and nice.
    return (sum(fields[:8]) - idle) / TICK


def _process_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        # after "pid (comm)": state is rest[0]; utime, stime, cutime, cstime are fields 14-17.
        return sum(int(x) for x in rest[11:15]) / TICK
    except (OSError, IndexError, ValueError):
        return None


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0:3]


class ForeignLoad:
    """own_pids() returns the PIDs of the lab's long-lived processes (vsnoopd, sinks, qemu);
    short-lived children are counted through os.times() once reaped."""

    def __init__(self, own_pids):
        self.own_pids = own_pids

    def _own_seconds(self, pids):
        t = os.times()
        total = t.user + t.system + t.children_user + t.children_system
        per_pid = {}
        for pid in pids:
            s = _process_seconds(pid)
            if s is not None:
                per_pid[pid] = s
        return total, per_pid

    def start(self):
        self._pids = list(self.own_pids())
        self._t0 = time.monotonic()
        self._busy0 = _machine_busy_seconds()
        self._own0, self._per0 = self._own_seconds(self._pids)
        return self

    def stop(self):
        """Other jobs' CPU use during the interval, in CPUs (0.5 = half a core)."""
        wall = time.monotonic() - self._t0
        busy = _machine_busy_seconds() - self._busy0
        own1, per1 = self._own_seconds(self._pids)
        own = own1 - self._own0
        for pid, s in per1.items():
            if pid in self._per0:
                own += s - self._per0[pid]
        return max(0.0, (busy - own) / wall) if wall > 0 else 0.0
