"""Checked TCP flows: a sink in a VM namespace, a sender in the sender namespace; the
receiver's byte count and SHA-256 must match what was sent."""
import json

from . import paths
from .netns import wait_for


class Sink:
    def __init__(self, topo, ns, port=5001, cpu=None):
        self.topo = topo
        self.port = port
        self.proc = topo.spawn(ns, [paths.PYTHON, paths.FLOWSINK, "--port", str(port)], cpu=cpu)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"flowsink did not start: {self.proc.stderr.read()}")

    def next_result(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"flowsink ended: {self.proc.stderr.read()}")
        return json.loads(line)

    def stop(self):
        self.topo.stop(self.proc)


class TransferError(AssertionError):
    pass


def send(ns, to, nbytes, port=5001, seed=1, cc="cubic", timeout=120, cpu=None,
         total_timeout=None):
    """Runs one flow from ns to `to`; returns flowsend's report. `timeout` bounds each socket
    operation (a flow that makes no progress for that long has stalled); `total_timeout`
    bounds the whole flow (default: timeout + 30 s)."""
    argv = [paths.PYTHON, paths.FLOWSEND, "--to", to, "--port", str(port), "--bytes", str(nbytes),
            "--seed", str(seed), "--timeout", str(timeout)]
    if cc:
        argv += ["--cc", cc]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu)] + argv
    out = ns.exec(*argv, timeout=total_timeout or timeout + 30)
    return json.loads(out)


def checked_flow(sender_ns, sink, to, nbytes, seed=1, cc="cubic", timeout=120, cpu=None):
    """One flow, verified byte for byte: returns (sender report, sink report)."""
    sent = send(sender_ns, to, nbytes, port=sink.port, seed=seed, cc=cc, timeout=timeout, cpu=cpu)
    got = sink.next_result()
    if got["bytes"] != nbytes or got["sha256"] != sent["sha256"]:
        raise TransferError(f"flow of {nbytes} bytes arrived as {got['bytes']} bytes, "
                            f"sha256 {got['sha256']} (sent {sent['sha256']})")
    return sent, got
