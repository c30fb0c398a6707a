"""Watches a flow from the host while it runs: what vsnoopd knows of it (the guest's ACK and
right edge, vSnoop's ACK, the guest's buffer) and, for qemu guests, when the VM's vCPU thread
ran. The samples are what the lab's ceiling is computed from (ceiling.py).

vsnoopd answers one JSON request per connection on its control socket (vsnoopctl's
protocol); the observer speaks it directly, every few milliseconds, from a thread.
"""
import json
import socket
import threading
import time


def control_request(path, request, timeout=2.0):
    """One request to vsnoopd's control socket; returns the decoded reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall((json.dumps(request) + "\n").encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return json.loads(b"".join(chunks))


def read_schedstat(path):
    """(ns on the CPU, ns waiting on a run queue, times run) of a thread, or None once gone."""
    try:
        with open(path) as f:
            run_ns, wait_ns, slices = f.read().split()[:3]
        return int(run_ns), int(wait_ns), int(slices)
    except (OSError, ValueError):
        return None


class FlowObserver:
    """Samples vsnoopd (and optionally qemu vCPU threads) every `interval` seconds.

    Each sample: {"t": monotonic seconds, "flows": [compact flow], "buffer_bytes": n,
    "schedule": {...} (emulated guests), "vcpu": [run_ns, wait_ns, slices] (qemu)}.
    """

    def __init__(self, control_path, guest_name, interval=0.004, vcpu_schedstat=None,
                 stats_every=1, flow_limit=4096):
        self.control_path = control_path
        self.guest_name = guest_name
        self.interval = interval
        self.vcpu_schedstat = vcpu_schedstat
        self.stats_every = stats_every
        self.flow_limit = flow_limit
        self.samples = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = None

    def _guest_stats(self):
        stats = control_request(self.control_path, {"cmd": "stats"})
        for g in stats["guests"]:
            if g["name"] == self.guest_name:
                return g
        raise KeyError(self.guest_name)

    def _sample(self, n):
        t = time.monotonic()
        sample = {"t": t}
        # No small limit: vsnoopd lists closing flows (kept for its transient timeout, 30 s)
        # before established ones, so after a few dozen short flows the running one would
        # fall off the end of a short list.
        flows = control_request(self.control_path,
                                {"cmd": "flows", "guest": self.guest_name,
                                 "limit": self.flow_limit})["flows"]
        sample["flows"] = [{
            "remote": f["remote"], "state": f["state"], "rcv_nxt": f["rcv_nxt"],
            "guest_ack": f["guest_ack"], "edge": f["guest_right_edge"],
            "vsnoop_ack": f["vsnoop_ack"], "wscale": f["options"]["wscale_guest"],
            "mss": f["options"]["mss"], "early_acks": f["stats"]["early_acks"],
            "to_guest": f["stats"]["payload_bytes_to_guest"],
        } for f in flows]
        if n % self.stats_every == 0:
            g = self._guest_stats()
            sample["buffer_bytes"] = g["buffer"]["bytes"]
            if "schedule" in g:
                sample["schedule"] = {"state": g["schedule"]["state"], "turns": g["schedule"]["turns"],
                                      "running_ms": g["schedule"]["running_ms"]}
        if self.vcpu_schedstat:
            sample["vcpu"] = read_schedstat(self.vcpu_schedstat)
        self.samples.append(sample)

    def _loop(self):
        n = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self._sample(n)
            except (OSError, ValueError, KeyError):
                self.errors += 1
            n += 1
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at = time.monotonic()  # fell behind: do not burst to catch up
                delay = 0
            self._stop.wait(delay)

    def start(self):
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join()
        return self.samples
