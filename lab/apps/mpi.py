#!/usr/bin/python3
"""The MPI experiment: an MPI job whose ranks live in VMs that share cores.

    lab/apps/mpi.py --name mpi                    # the full run (k = 2 and 3, repeated)
    lab/apps/mpi.py --preset quick --name mpi-q   # k = 2, one repetition, a few minutes

Four ranks, one per emulated VM (network namespaces behind vsnoopd), talk over TCP (Open
MPI's TCP transport) through vsnoopd; each VM shares its core with k-1 CPU-burning
neighbours (vsnoopd's emulated round-robin scheduling, 30 ms slices). mpirun runs in the
client namespace (outside the host) and starts the ranks through lab/apps/bin/netns-rsh.
The benchmark is lab/apps/mpibench/mpibench.cc (built here with mpicxx): ping-pong latency
and bandwidth over message sizes, all-reduce, all-to-all, and a 2-D stencil halo exchange.
Every cell is measured through vsnoopd with vSnoop on and off (the same daemon,
--no-vsnoop), and through the Linux bridge (unconsolidated reference, k = 1).

Polling MPI ranks are CPU-bound: a rank that runs keeps its core for its whole slice. The
emulated VMs therefore block only after a whole slice without network work
(idle_us = slice), unlike the web experiment's I/O-bound servers.

Writes results/<name>/: mpi.jsonl (every measurement of every run, with vsnoopd's counters),
mpi.csv (medians over repetitions), mpi-table.md, mpi-*.png; prints the table. Needs root, a
built vsnoopd (VSNOOP_BUILD=<build dir>) and Debian's Open MPI (installed by
lab/apps/install-deps.sh on first run).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apphost  # noqa: E402
from apphost import (AppHost, ForeignLoad, Progress, Topology, counters_delta,  # noqa: E402
                     environment, format_table, markdown_table, measurement_lock, results_dir,
                     run, snapshot, write_jsonl)
from vsnooplab import paths  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "mpibench", "mpibench.cc")
AGENT = os.path.join(HERE, "bin", "netns-rsh")
INSTALL = os.path.join(HERE, "install-deps.sh")
RANKS = 4

PRESETS = {
    "quick": {"ks": [2], "reps": 1, "budget": 1.0, "min_iters": 3, "max_bytes": 1 << 20,
              "stencil_iters": 10},
    "full": {"ks": [2, 3], "reps": 3, "budget": 1.5, "min_iters": 4, "max_bytes": 4 << 20,
             "stencil_iters": 16},
}


def build_benchmark(outdir):
    """Compiles mpibench with Open MPI's mpicxx (the C bindings only)."""
    binary = os.path.join(outdir, "mpibench")
    run(["mpicxx", "-std=c++20", "-O2", "-Wall", "-Wextra", "-Wconversion", "-Wshadow", "-Werror",
         "-DOMPI_SKIP_MPICXX=1", "-o", binary, SOURCE])
    return binary


def mpirun_argv(host, hostfile, binary, preset):
    subnet = f"{apphost.CLIENT_IP.rsplit('.', 1)[0]}.0/24"
    return [
        "mpirun", "--allow-run-as-root", "--hostfile", hostfile, "-np", str(RANKS),
        "--map-by", "node", "--bind-to", "none",
        "--mca", "plm_rsh_agent", AGENT, "--mca", "plm_rsh_no_tree_spawn", "1",
        "--mca", "pml", "ob1", "--mca", "btl", "self,tcp",
        "--mca", "btl_tcp_if_include", subnet, "--mca", "oob_tcp_if_include", subnet,
        # Ranks poll; yielding and nice 19 keep them from starving vsnoopd (which emulates
        # the scheduling) on this two-core machine.
        "--mca", "mpi_yield_when_idle", "1",
        "nice", "-n", "19", binary,
        "--budget", str(preset["budget"]), "--min-iters", str(preset["min_iters"]),
        "--max-bytes", str(preset["max_bytes"]), "--stencil-iters", str(preset["stencil_iters"]),
    ]


class JobFailed(RuntimeError):
    def __init__(self, why, stderr):
        super().__init__(why)
        self.stderr = stderr


def run_job(host, argv, timeout):
    """One mpirun from the client namespace; its JSON lines. Raises JobFailed."""
    env = dict(os.environ,
               VSNOOP_MPI_NETNS=" ".join(f"{ip}={host.ns(name).name}"
                                         for name, ip in host.ips.items()),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p = host.topo.spawn(host.client, argv, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        host.topo.stop(p)  # mpirun takes its orteds and ranks down with it
        out, err = p.communicate()
        raise JobFailed(f"mpirun did not finish in {timeout} s", f"{out}\n{err}")
    finally:
        if p in host.topo.processes:
            host.topo.processes.remove(p)
    if p.returncode != 0:
        raise JobFailed(f"mpirun failed ({p.returncode})", f"{out}\n{err}")
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if not results:
        raise JobFailed("mpibench printed nothing", f"{out}\n{err}")
    return results


def key_of(m):
    return (m["op"], m["bytes"])


def summarize(records):
    """Median over repetitions per (mode, k, op, bytes)."""
    groups = {}
    for r in records:
        for m in r["results"]:
            groups.setdefault((r["mode"], r["k"], *key_of(m)), []).append(m)
    rows = {}
    for key, ms in groups.items():
        rows[key] = {"us_per_op": statistics.median(m["us_per_op"] for m in ms),
                     "mbytes_per_s": statistics.median(m["mbytes_per_s"] for m in ms),
                     "iters": statistics.median(m["iters"] for m in ms), "reps": len(ms),
                     "checksum": ms[0].get("checksum"),
                     "comm_us_per_op": (statistics.median(m["comm_us_per_op"] for m in ms)
                                        if "comm_us_per_op" in ms[0] else None)}
    return rows


def size_label(n):
    for unit, div in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return f"{n}B" if n < 1024 else f"{n / 1024:.0f}K"


def write_summary(outdir, rows, ks):
    ops = sorted({(op, b) for (_, _, op, b) in rows},
                 key=lambda x: (["pingpong", "allreduce", "alltoall", "stencil"].index(x[0]), x[1]))
    header = ["op", "bytes", "bridge us"]
    for k in ks:
        header += [f"k={k} vsnoop us", f"k={k} off us", f"k={k} off/vsnoop"]
    header += ["bridge MB/s"] + [f"k={k} vsnoop MB/s" for k in ks] + [f"k={k} off MB/s" for k in ks]
    table = []
    csv = ["mode,k,op,bytes,reps,us_per_op,mbytes_per_s,comm_us_per_op"]
    for (mode, k, op, b), r in sorted(rows.items(), key=lambda x: (x[0][2], x[0][3], x[0][0], x[0][1])):
        comm = "" if r["comm_us_per_op"] is None else f"{r['comm_us_per_op']:.3f}"
        csv.append(f"{mode},{k},{op},{b},{r['reps']},{r['us_per_op']:.3f},{r['mbytes_per_s']:.4f},"
                   f"{comm}")
    for op, b in ops:
        get = lambda mode, k, f: rows.get((mode, k, op, b), {}).get(f)
        fmt_us = lambda v: "-" if v is None else (f"{v / 1000:.1f} ms" if v >= 10000 else f"{v:.0f}")
        line = [op, size_label(b), fmt_us(get("bridge", 1, "us_per_op"))]
        for k in ks:
            on, off = get("vsnoop", k, "us_per_op"), get("vsnoop-off", k, "us_per_op")
            line += [fmt_us(on), fmt_us(off), f"{off / on:.2f}" if on and off else "-"]
        fmt_bw = lambda v: "-" if v is None else f"{v:.2f}"
        line += [fmt_bw(get("bridge", 1, "mbytes_per_s"))]
        line += [fmt_bw(get("vsnoop", k, "mbytes_per_s")) for k in ks]
        line += [fmt_bw(get("vsnoop-off", k, "mbytes_per_s")) for k in ks]
        table.append(line)
    with open(os.path.join(outdir, "mpi.csv"), "w") as f:
        f.write("\n".join(csv) + "\n")
    with open(os.path.join(outdir, "mpi-table.md"), "w") as f:
        f.write(markdown_table(header, table) + "\n")
    print(format_table(header, table))


def plot(outdir, rows, ks):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    series = [("bridge", 1, "#555555", "-", "Linux bridge (k=1)")]
    styles = {2: "-", 3: "--", 4: ":"}
    for k in ks:
        series += [("vsnoop", k, "#1f77b4", styles.get(k, "-."), f"vSnoop on, k={k}"),
                   ("vsnoop-off", k, "#ff7f0e", styles.get(k, "-."), f"vSnoop off, k={k}")]

    def points(mode, k, op, field):
        pts = sorted((b, r[field]) for (m, kk, o, b), r in rows.items()
                     if m == mode and kk == k and o == op)
        return [p[0] for p in pts], [p[1] for p in pts]

    paths_out = []
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, field, label in ((axes[0], "us_per_op", "one-way time (us)"),
                             (axes[1], "mbytes_per_s", "bandwidth (MB/s)")):
        for mode, k, colour, ls, name in series:
            x, y = points(mode, k, "pingpong", field)
            if x:
                ax.plot(x, y, ls, color=colour, marker="o", ms=3, label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("message size (bytes)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"MPI ping-pong between two VMs ({RANKS} ranks, Open MPI over TCP through vsnoopd)")
    fig.tight_layout()
    p = os.path.join(outdir, "mpi-pingpong.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths_out.append(p)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, op in zip(axes[:2], ("allreduce", "alltoall")):
        for mode, k, colour, ls, name in series:
            x, y = points(mode, k, op, "us_per_op")
            if x:
                ax.plot(x, [v / 1000 for v in y], ls, color=colour, marker="o", ms=4, label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel({"allreduce": "vector size (bytes)", "alltoall": "block per pair (bytes)"}[op])
        ax.set_ylabel("time per operation (ms)")
        ax.set_title(op)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    # The stencil: one bar per series, its halo-exchange share hatched.
    ax = axes[2]
    names, totals, comms, colours = [], [], [], []
    for mode, k, colour, _, name in series:
        r = next((r for (m, kk, o, _), r in rows.items() if m == mode and kk == k and o == "stencil"),
                 None)
        if r:
            names.append(name.replace("vSnoop ", "").replace("Linux bridge", "bridge"))
            totals.append(r["us_per_op"] / 1000)
            comms.append((r["comm_us_per_op"] or 0) / 1000)
            colours.append(colour)
    ax.bar(range(len(names)), totals, color=colours, alpha=0.45, label="whole iteration")
    ax.bar(range(len(names)), comms, color=colours, hatch="//", label="halo exchange")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8, rotation=20)
    ax.set_ylabel("time per iteration (ms)")
    ax.set_title("stencil (2x2 ranks, 128 KB of halos per rank)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = os.path.join(outdir, "mpi-collectives.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths_out.append(p)
    return paths_out


def cells(preset):
    out = [("bridge", 1)]
    for k in preset["ks"]:
        out += [("vsnoop", k), ("vsnoop-off", k)]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="full")
    ap.add_argument("--name", help="results/<name> (default: apps-mpi-<preset>-<time>)")
    ap.add_argument("--ks", help="comma-separated VMs per core (overrides the preset)")
    ap.add_argument("--reps", type=int, help="repetitions of every cell")
    ap.add_argument("--budget", type=float, help="seconds per measurement (after --min-iters)")
    ap.add_argument("--slice-ms", type=int, default=30, help="scheduling slice (default 30 ms)")
    ap.add_argument("--idle-us", type=int,
                    help="how long a VM stays on its core without network work (default: the "
                         "slice: polling ranks are CPU-bound)")
    ap.add_argument("--buffer-bytes", type=int, help="vsnoopd's per-VM buffer (default: vsnoopd's, 1 MB)")
    ap.add_argument("--report", metavar="DIR", help="only redo the table and plots of a run")
    a = ap.parse_args()
    if a.report:
        records = [json.loads(line) for line in open(os.path.join(a.report, "mpi.jsonl"))]
        run_info = next(r["run"] for r in records if "run" in r)
        records = [r for r in records if "results" in r]
        rows = summarize(records)
        write_summary(a.report, rows, run_info["preset_values"]["ks"])
        plot(a.report, rows, run_info["preset_values"]["ks"])
        return 0
    preset = dict(PRESETS[a.preset])
    if a.ks:
        preset["ks"] = [int(x) for x in a.ks.split(",")]
    for key in ("reps", "budget"):
        if getattr(a, key):
            preset[key] = getattr(a, key)
    idle_us = a.idle_us if a.idle_us is not None else a.slice_ms * 1000
    if os.geteuid() != 0:
        sys.exit("mpi.py needs root (network namespaces)")
    if not os.path.exists(paths.VSNOOPD):
        sys.exit(f"vsnoopd not found at {paths.VSNOOPD}: run `make build` or set VSNOOP_BUILD")
    subprocess.run([INSTALL, "mpi"], check=True)

    outdir = results_dir("mpi", a.preset, a.name)
    jsonl = os.path.join(outdir, "mpi.jsonl")
    if os.path.exists(jsonl):
        os.rename(jsonl, jsonl + f".{int(time.time())}.old")
    binary = build_benchmark(outdir)
    todo = cells(preset)
    env = environment(a.preset, {"experiment": "mpi", "preset_values": preset, "ranks": RANKS,
                                 "slice_ms": a.slice_ms, "idle_us": idle_us, "cells": todo,
                                 "buffer_bytes": a.buffer_bytes,
                                 "mpirun": run(["mpirun", "--version"]).splitlines()[0]})
    write_jsonl(jsonl, {"run": env})
    print(f"[mpi] results in {outdir}")
    print(f"[mpi] {env['uptime']}")

    records = []
    # A job takes about a minute at k = 3 (the budget per measurement times about 25
    # measurements, plus start-up at the VMs' pace); one that has not finished in 7 minutes
    # is stuck.
    timeout = 420
    with Topology("vsm") as topo:
        names = [f"r{i}" for i in range(RANKS)]
        host = AppHost(topo, names, slice_ms=a.slice_ms, idle_us=idle_us,
                       buffer_bytes=a.buffer_bytes)
        hostfile = os.path.join(host.workdir, "hosts")
        with open(hostfile, "w") as f:
            f.write("".join(f"{host.ips[n]} slots=1\n" for n in names))
        total = preset["reps"] * len(todo)
        with measurement_lock():
            write_jsonl(jsonl, {"run_locked": {"uptime_at_lock": apphost.uptime()}})
            progress = Progress(total)
            for rep in range(preset["reps"]):
                for mode, k in todo:
                    progress.step(f"rep {rep + 1} {mode} k={k}")
                    host.forward(mode, k)
                    before = snapshot(host)
                    load = ForeignLoad(host.own_pids).start()
                    up = apphost.uptime()
                    t0 = time.monotonic()
                    results = None
                    for attempt in range(1, 3):
                        try:
                            results = run_job(host, mpirun_argv(host, hostfile, binary, preset),
                                              timeout)
                            break
                        except JobFailed as e:
                            # Kept with the results: a job that does not finish is a finding.
                            log = os.path.join(outdir, f"failed-{mode}-k{k}-rep{rep}-{attempt}.log")
                            with open(log, "w") as f:
                                f.write(e.stderr)
                            write_jsonl(jsonl, {"failed": {"rep": rep, "mode": mode, "k": k,
                                                           "attempt": attempt, "why": str(e),
                                                           "log": os.path.basename(log),
                                                           "counters": counters_delta(
                                                               before, snapshot(host))}})
                            print(f"\n[mpi] {mode} k={k}: {e} (see {log})", flush=True)
                            host.forward(mode, k)  # a fresh vsnoopd, no half-open flows
                            before = snapshot(host)
                    if results is None:
                        load.stop()
                        continue
                    rec = {"rep": rep, "mode": mode, "k": k, "results": results,
                           "seconds": round(time.monotonic() - t0, 1),
                           "counters": counters_delta(before, snapshot(host)),
                           # CPUs used outside vsnoopd and mpirun: the ranks (started after the
                           # count began, so not known to it) and any other job.
                           "cpu_ranks_and_others": load.stop(), "uptime": up}
                    records.append(rec)
                    write_jsonl(jsonl, rec)
            progress.end()
    checksums = {m.get("checksum") for r in records for m in r["results"] if m["op"] == "stencil"}
    if len(checksums) > 1:
        print(f"[mpi] WARNING: the stencil's checksum differs between runs: {checksums}")
    rows = summarize(records)
    write_summary(outdir, rows, preset["ks"])
    pngs = plot(outdir, rows, preset["ks"])
    print(f"[mpi] wrote {jsonl}, {os.path.join(outdir, 'mpi.csv')}, {', '.join(pngs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
