#!/usr/bin/python3
"""The datapath's cost, measured against the Linux bridge in one run on one topology:

    [sender ns] --veth-- [host ns: Linux bridge | vsnoopd] --veth-- [receiver ns]

Rows: the Linux bridge; vsnoopd with vSnoop on; vsnoopd with vSnoop off (the engine
observes); vsnoopd with the engine not run at all (--engine off: a plain bridge with
per-guest buffers). No VM scheduling. For each: TCP throughput (iperf3, cubic) with
offloads on (GSO super-frames through vnet headers) and off (MTU frames, so frames per
second count), and ping round-trip time. vsnoopd runs on CPU 1, iperf3's client and server
on CPU 0. Medians of --runs runs; ratios against the bridge and against --engine off are
taken within the same run.

    bench/datapath_bench.py [--runs 3] [--seconds 10] [--out bench/results/datapath-DATE.json]

Needs root (network namespaces) and a release build (VSNOOP_BUILD, default build/release).
"""
import argparse
import datetime
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lab"))
from vsnooplab.hosts import EmulatedHost, vm_address  # noqa: E402
from vsnooplab.netns import Topology, wait_for  # noqa: E402

ROWS = [
    ("bridge", "bridge", []),
    ("vsnoopd, vSnoop on", "vsnoop", []),
    ("vsnoopd, vSnoop off", "vsnoop-off", []),
    ("vsnoopd, engine off", "vsnoop", ["--engine", "off"]),
]


def iperf(h, seconds):
    server = h.topo.spawn(h.vms[0], ["iperf3", "-s", "-1"], cpu=0)
    time.sleep(0.5)
    out = h.sender.exec("taskset", "-c", "0", "iperf3", "-c", vm_address(1), "-t", str(seconds),
                        "-C", "cubic", "-J")
    h.topo.stop(server)
    j = json.loads(out)
    return j["end"]["sum_received"]["bits_per_second"] / 1e9


def ping(h):
    out = h.sender.exec("ping", "-q", "-c", "50", "-i", "0.02", vm_address(1))
    avg = out.split("rtt min/avg/max/mdev = ")[1].split("/")[1]
    return float(avg)


def frames_forwarded(h):
    if h.vsnoopd is None:
        return None
    s = h.vsnoopd.stats()
    return s["bridge"]["frames_from_uplink"] + s["guests"][0]["counters"]["frames_from_guest"]


def measure(mode, extra, offloads, seconds):
    with Topology("vsb") as t:
        h = EmulatedHost(t, mode=mode, offloads=offloads, extra_args=extra, vsnoopd_cpu=1,
                         sender_sysctls={"net.ipv4.tcp_no_metrics_save": 1})
        try:
            rtt = ping(h)
            before = frames_forwarded(h)
            gbps = iperf(h, seconds)
            after = frames_forwarded(h)
            fps = (after - before) / seconds if before is not None else None
            return {"gbps": gbps, "rtt_ms": rtt, "frames_per_s": fps}
        finally:
            h.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("datapath_bench: needs root (network namespaces)")
    lock = open("/tmp/vsnoop-measure.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    load = os.getloadavg()
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "load_at_start": load, "runs": a.runs, "seconds": a.seconds, "rows": {}}
    total = len(ROWS) * 2 * a.runs
    done = 0
    for offloads in (True, False):
        for name, mode, extra in ROWS:
            key = f"{name} | offloads {'on' if offloads else 'off'}"
            samples = []
            for _ in range(a.runs):
                samples.append(measure(mode, extra, offloads, a.seconds))
                done += 1
                bar = "#" * (20 * done // total)
                print(f"\r[{bar:<20}] {done}/{total} {key:<40}", end="", file=sys.stderr, flush=True)
            results["rows"][key] = {
                "samples": samples,
                "gbps": statistics.median(s["gbps"] for s in samples),
                "rtt_ms": statistics.median(s["rtt_ms"] for s in samples),
                "frames_per_s": (statistics.median(s["frames_per_s"] for s in samples)
                                 if samples[0]["frames_per_s"] is not None else None),
            }
    print(file=sys.stderr)
    results["load_at_end"] = os.getloadavg()
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                f"datapath-{datetime.date.today().isoformat()}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"{'row':<45} {'Gbit/s':>8} {'x bridge':>9} {'frames/s':>10} {'x engine off':>13} {'ping ms':>8}")
    for offloads in ("on", "off"):
        bridge = results["rows"][f"bridge | offloads {offloads}"]
        plain = results["rows"][f"vsnoopd, engine off | offloads {offloads}"]
        for name, _, _ in ROWS:
            r = results["rows"][f"{name} | offloads {offloads}"]
            fps = r["frames_per_s"]
            fps_text = f"{fps:10.0f}" if fps else f"{'-':>10}"
            ratio = f"{fps / plain['frames_per_s']:13.2f}" if fps and plain["frames_per_s"] else f"{'-':>13}"
            print(f"{name + ', offloads ' + offloads:<45} {r['gbps']:8.2f} {r['gbps'] / bridge['gbps']:9.2f} "
                  f"{fps_text} {ratio} {r['rtt_ms']:8.3f}")
    print(f"load average: start {load[0]:.2f}, end {results['load_at_end'][0]:.2f}; raw: {out}")


if __name__ == "__main__":
    main()
