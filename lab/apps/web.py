#!/usr/bin/python3
"""The two-tier web experiment: an auction site under VM consolidation.

    lab/apps/web.py --name web                   # the full run: k = 2 and 3, 3 repetitions
    lab/apps/web.py --preset quick --name web-q  # k = 2, one repetition, a few minutes

The web VM runs nginx in front of the auction application (lab/apps/auction/app.py), the
database VM runs PostgreSQL; wrk in the client namespace (outside the host) drives the
request mix of lab/apps/auction/mix.lua, then each request type alone. Every cell is measured
through vsnoopd with vSnoop on, with vSnoop off (the same daemon, --no-vsnoop), and once
through the Linux bridge (the unconsolidated reference: it cannot emulate scheduling). Each
VM shares its core with k-1 CPU-burning neighbours (emulated by vsnoopd).

Writes results/<run>/: web.jsonl (one record per wrk run, with vsnoopd's counters over it),
web.csv (the summary), web-table.md, web.png (plots), and prints a table with the vsnoop/off
ratios. `--report DIR` redoes the table and plots of a run.
Needs root, a built vsnoopd (make build, or VSNOOP_BUILD=<build dir>), and Debian's nginx,
postgresql, python3-psycopg2 and wrk (lab/apps/install-deps.sh installs them on first run).
"""
import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apphost  # noqa: E402
from apphost import (AppHost, ForeignLoad, Progress, Topology, counters_delta,  # noqa: E402
                     environment, format_table, markdown_table, measurement_lock, results_dir,
                     run, snapshot, wait_for, write_jsonl)
from vsnooplab import paths  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
APP = os.path.join(HERE, "auction", "app.py")
MIX = os.path.join(HERE, "auction", "mix.lua")
NGINX_CONF = os.path.join(HERE, "auction", "nginx.conf")
TYPES = ["mix", "browse", "item", "photo", "bid", "sell"]

PRESETS = {
    # k values measured through vsnoopd (vSnoop on and off); the bridge is always k=1.
    "quick": {"ks": [2], "duration": 8, "warmup": 3, "connections": 16, "reps": 1,
              "types": TYPES},
    "full": {"ks": [2, 3], "duration": 8, "warmup": 3, "connections": 16, "reps": 3,
             "types": TYPES},
}


class Database:
    """PostgreSQL in the database VM, in a private data directory removed afterwards."""

    def __init__(self, topo, ns, listen_ip, workdir):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                      key=lambda p: int(p.split("/")[4]))
        if not bins:
            raise RuntimeError("PostgreSQL's server binaries are missing (apt-get install postgresql)")
        self.bin = os.path.dirname(bins[-1])
        self.topo = topo
        self.ns = ns
        # postgres (the package's system user) owns the cluster; root keeps the directory.
        self.dir = tempfile.mkdtemp(prefix="vsnoop-apps-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        for d in (self.data, self.sock):
            os.makedirs(d)
            shutil.chown(d, "postgres", "postgres")
        topo.cleanups.insert(0, lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        run([*self.as_postgres, os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "auction",
             "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"], cwd=self.dir)
        with open(os.path.join(self.data, "pg_hba.conf"), "a") as f:
            f.write("host all auction 10.77.0.0/24 trust\n")  # the web VM's pool
        self.log = open(os.path.join(self.dir, "postgres.log"), "w")
        self.proc = topo.spawn(ns, [
            *self.as_postgres, os.path.join(self.bin, "postgres"), "-D", self.data, "-k", self.sock,
            "-c", f"listen_addresses={listen_ip}", "-c", "max_connections=200",
            "-c", "shared_buffers=128MB", "-c", "synchronous_commit=off",
            "-c", "logging_collector=off"], stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)
        topo.cleanups.append(self.stop)  # before the topology deletes the namespace
        wait_for(self._ready, 30, "PostgreSQL to accept connections")

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"postgres exited: {open(self.log.name).read()[-2000:]}")
        return subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", self.sock],
                              capture_output=True).returncode == 0

    def psql(self, sql, db="postgres"):
        return run(["ip", "netns", "exec", self.ns.name, os.path.join(self.bin, "psql"), "-X", "-q",
                    "-v", "ON_ERROR_STOP=1", "-h", self.sock, "-U", "auction", "-d", db, "-c", sql])

    def populate(self):
        self.psql("CREATE DATABASE auction_template")
        run(["ip", "netns", "exec", self.ns.name, paths.PYTHON, APP, "populate", "--db-host",
             self.sock, "--dbname", "auction_template"])

    def reset(self):
        """A fresh copy of the populated database: every cell starts from the same data."""
        # FORCE: a session of the previous cell's pool may linger (its FIN was lost when the
        # forwarding changed under it).
        self.psql("DROP DATABASE IF EXISTS auction WITH (FORCE)")
        self.psql("CREATE DATABASE auction TEMPLATE auction_template")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: PostgreSQL's fast shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc in self.topo.processes:
            self.topo.processes.remove(self.proc)
        self.log.close()


class WebTier:
    """nginx and the auction application in the web VM."""

    def __init__(self, topo, ns, listen_ip, db_ip, workdir, pool):
        self.topo = topo
        self.ns = ns
        self.db_ip = db_ip
        self.pool = pool
        self.url = f"http://{listen_ip}/"
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(self.dir)
        conf = open(NGINX_CONF).read().replace("@DIR@", self.dir).replace("@LISTEN@", f"{listen_ip}:80")
        conf_path = os.path.join(self.dir, "nginx.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        self.nginx_log = open(os.path.join(self.dir, "stderr.log"), "w")
        self.nginx = topo.spawn(ns, ["nginx", "-p", self.dir, "-e", os.path.join(self.dir, "error.log"),
                                     "-c", conf_path, "-g", "daemon off;"],
                                stdout=self.nginx_log, stderr=subprocess.STDOUT)
        self.app = None
        self.app_log_path = os.path.join(workdir, "app.log")

    def start_app(self):
        self.stop_app()
        self.app_log = open(self.app_log_path, "a")
        self.app = self.topo.spawn(self.ns, [paths.PYTHON, APP, "serve", "--listen", "127.0.0.1:8000",
                                             "--db-host", self.db_ip, "--pool", str(self.pool)],
                                   stdout=subprocess.PIPE, stderr=self.app_log)
        line = self.app.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"the auction application did not start: {open(self.app_log_path).read()[-2000:]}")

    def stop_app(self):
        if self.app:
            self.topo.stop(self.app)
            self.app_log.close()
            self.app = None

    def check(self, client_ns):
        """Every request type answers through nginx, from the client (2xx)."""
        code = ("import urllib.request as u, sys\n"
                f"base = {self.url!r}\n"
                "for p in ['health', 'browse?category=3&page=1', 'item?id=42', 'photo?id=7']:\n"
                "    r = u.urlopen(base + p, timeout=60); assert r.status == 200, p; r.read()\n"
                "r = u.urlopen(u.Request(base + 'bid', data=b'item=42&user=7&amount=9999.5'), timeout=60)\n"
                "assert b'accepted' in r.read()\n"
                "r = u.urlopen(u.Request(base + 'sell?user=3&category=2&title=x', data=bytes(50000),"
                " headers={'Content-Type': 'image/jpeg'}), timeout=60)\n"
                "assert b'listed' in r.read()\n")
        client_ns.exec(paths.PYTHON, "-c", code, timeout=120)


def run_wrk(client_ns, url, kind, duration, connections, seed):
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", MIX,
            url, "--", kind, str(seed)]
    out = client_ns.exec(*argv, timeout=duration + 60)
    m = re.search(r"^WRKJSON (\{.*\})$", out, re.M)
    if not m:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    r = json.loads(m.group(1))
    r["requests_per_s"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors_total"] = sum(r["errors"].values())
    return r


def flow_stats(host):
    """{(guest address, remote): (payload bytes to the guest, early-acked bytes, early ACKs)}."""
    return {(f["guest_address"], f["remote"]): (f["stats"]["payload_bytes_to_guest"],
                                                f["stats"]["early_acked_bytes"], f["stats"]["early_acks"],
                                                f["state"])
            for f in host.flows()}


def flow_delta(before, after, vm_of_ip):
    """Per VM: flows that carried data to it during the run, the bytes, the early-acked bytes."""
    out = {}
    for key, (payload, acked, acks, state) in after.items():
        b = before.get(key, (0, 0, 0, None))
        d_payload, d_acked = payload - b[0], acked - b[1]
        if d_payload <= 0:
            continue
        vm = vm_of_ip.get(key[0].rsplit(":", 1)[0], key[0])
        s = out.setdefault(vm, {"flows": 0, "payload_bytes": 0, "early_acked_bytes": 0,
                                "early_acks": 0, "states": {}})
        s["flows"] += 1
        s["payload_bytes"] += d_payload
        s["early_acked_bytes"] += d_acked
        s["early_acks"] += acks - b[2]
        s["states"][state] = s["states"].get(state, 0) + 1
    return out


def cells(preset):
    out = [("bridge", 1)]
    for k in preset["ks"]:
        out += [("vsnoop", k), ("vsnoop-off", k)]
    return out


def summarize(records, types):
    """Median over repetitions per (mode, k, type)."""
    groups = {}
    for r in records:
        groups.setdefault((r["mode"], r["k"], r["type"]), []).append(r)
    rows = {}
    for key, rs in groups.items():
        med = lambda f: statistics.median(f(r) for r in rs)
        rows[key] = {
            "rps": med(lambda r: r["wrk"]["requests_per_s"]),
            "p50_ms": med(lambda r: r["wrk"]["latency_us"]["p50"] / 1000),
            "p90_ms": med(lambda r: r["wrk"]["latency_us"]["p90"] / 1000),
            "p99_ms": med(lambda r: r["wrk"]["latency_us"]["p99"] / 1000),
            "errors": sum(r["wrk"]["errors_total"] for r in rs),
            "reps": len(rs),
            "early_acks_per_req": med(lambda r: sum(
                v.get("early_acks", 0) for v in (r["counters"] or {}).get("guests", {}).values())
                / max(1, r["wrk"]["requests"])),
            "to_web_per_req": med(lambda r: r["flows"].get("web", {}).get("payload_bytes", 0)
                                  / max(1, r["wrk"]["requests"])),
            "to_db_per_req": med(lambda r: r["flows"].get("db", {}).get("payload_bytes", 0)
                                 / max(1, r["wrk"]["requests"])),
            "foreign_cpu": med(lambda r: r["foreign_cpu"]),
        }
    return rows


def print_and_write_summary(outdir, rows, ks, types):
    header = ["type", "k", "mode", "req/s", "p50 ms", "p90 ms", "p99 ms", "err", "B->web/req",
              "B->db/req", "eACK/req", "vsnoop/off req/s", "off/vsnoop p50", "off/vsnoop p99"]
    table = []
    csv_lines = ["type,k,mode,requests_per_s,p50_ms,p90_ms,p99_ms,errors,reps,bytes_to_web_per_req,"
                 "bytes_to_db_per_req,early_acks_per_req,foreign_cpu"]
    for t in types:
        order = [("bridge", 1)] + [(m, k) for k in ks for m in ("vsnoop", "vsnoop-off")]
        for mode, k in order:
            r = rows.get((mode, k, t))
            if not r:
                continue
            ratio = ["", "", ""]
            if mode == "vsnoop" and (("vsnoop-off", k, t) in rows):
                off = rows[("vsnoop-off", k, t)]
                ratio = [f"{r['rps'] / off['rps']:.2f}" if off["rps"] else "-",
                         f"{off['p50_ms'] / r['p50_ms']:.2f}" if r["p50_ms"] else "-",
                         f"{off['p99_ms'] / r['p99_ms']:.2f}" if r["p99_ms"] else "-"]
            table.append([t, k, mode, f"{r['rps']:.1f}", f"{r['p50_ms']:.1f}", f"{r['p90_ms']:.1f}",
                          f"{r['p99_ms']:.1f}", r["errors"], f"{r['to_web_per_req']:.0f}",
                          f"{r['to_db_per_req']:.0f}", f"{r['early_acks_per_req']:.1f}", *ratio])
            csv_lines.append(",".join(str(x) for x in [
                t, k, mode, f"{r['rps']:.2f}", f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}",
                f"{r['p99_ms']:.2f}", r["errors"], r["reps"], f"{r['to_web_per_req']:.0f}",
                f"{r['to_db_per_req']:.0f}", f"{r['early_acks_per_req']:.2f}",
                f"{r['foreign_cpu']:.2f}"]))
    with open(os.path.join(outdir, "web.csv"), "w") as f:
        f.write("\n".join(csv_lines) + "\n")
    with open(os.path.join(outdir, "web-table.md"), "w") as f:
        f.write(markdown_table(header, table) + "\n")
    print(format_table(header, table))


def plot(outdir, rows, ks, types):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    metrics = [("rps", "requests/s"), ("p50_ms", "p50 response time (ms)"),
               ("p99_ms", "p99 response time (ms)")]
    series = [("bridge", 1, "#555555", "Linux bridge (k=1, unconsolidated)")]
    colours = {"vsnoop": "#1f77b4", "vsnoop-off": "#ff7f0e"}
    fig, axes = plt.subplots(len(metrics), len(ks), figsize=(4.2 * len(ks) + 1, 9), squeeze=False)
    for col, k in enumerate(ks):
        for row, (metric, label) in enumerate(metrics):
            ax = axes[row][col]
            groups = [("bridge", 1, "#555555", "bridge (k=1)"),
                      ("vsnoop", k, colours["vsnoop"], f"vSnoop on, k={k}"),
                      ("vsnoop-off", k, colours["vsnoop-off"], f"vSnoop off, k={k}")]
            width = 0.27
            for gi, (mode, kk, colour, name) in enumerate(groups):
                vals = [rows.get((mode, kk, t), {}).get(metric, 0) for t in types]
                ax.bar([i + (gi - 1) * width for i in range(len(types))], vals, width,
                       color=colour, label=name)
            ax.set_xticks(range(len(types)))
            ax.set_xticklabels(types, fontsize=8)
            if metric != "rps":
                ax.set_yscale("log")
            if col == 0:
                ax.set_ylabel(label)
            if row == 0:
                ax.set_title(f"{k} VM{'s' if k > 1 else ''} per core")
                ax.legend(fontsize=7)
    del series
    fig.suptitle("Auction site: nginx + app | PostgreSQL, wrk outside the host", fontsize=10)
    fig.tight_layout()
    path = os.path.join(outdir, "web.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="full")
    ap.add_argument("--name", help="results/<name> (default: apps-web-<preset>-<time>)")
    ap.add_argument("--ks", help="comma-separated VMs per core, e.g. 2,3 (overrides the preset)")
    ap.add_argument("--types", help=f"comma-separated request types from {','.join(TYPES)}")
    ap.add_argument("--duration", type=int, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, help="wrk's concurrent connections")
    ap.add_argument("--reps", type=int, help="repetitions of every cell")
    ap.add_argument("--slice-ms", type=int, default=30, help="scheduling slice (default 30 ms)")
    ap.add_argument("--idle-us", type=int, default=2000,
                    help="how long an emulated VM stays on its core after its last network work "
                         "(default 2000: about one request's service time here, so a reply "
                         "computed at once leaves in the same turn)")
    ap.add_argument("--buffer-bytes", type=int, help="vsnoopd's per-VM buffer (default: vsnoopd's, 1 MB)")
    ap.add_argument("--no-bridge", action="store_true", help="skip the Linux-bridge reference")
    ap.add_argument("--report", metavar="DIR", help="only redo the table and plots of a run")
    a = ap.parse_args()
    if a.report:
        lines = [json.loads(line) for line in open(os.path.join(a.report, "web.jsonl"))]
        run_info = next(r["run"] for r in lines if "run" in r)["preset_values"]
        records = [r for r in lines if "wrk" in r]
        types = [t for t in run_info["types"] if any(r["type"] == t for r in records)]
        rows = summarize(records, types)
        print_and_write_summary(a.report, rows, run_info["ks"], types)
        plot(a.report, rows, run_info["ks"], types)
        return 0
    preset = dict(PRESETS[a.preset])
    if a.ks:
        preset["ks"] = [int(x) for x in a.ks.split(",")]
    if a.types:
        preset["types"] = a.types.split(",")
    for key in ("duration", "connections", "reps"):
        if getattr(a, key):
            preset[key] = getattr(a, key)
    if os.geteuid() != 0:
        sys.exit("web.py needs root (network namespaces)")
    if not os.path.exists(paths.VSNOOPD):
        sys.exit(f"vsnoopd not found at {paths.VSNOOPD}: run `make build` or set VSNOOP_BUILD")
    subprocess.run([os.path.join(HERE, "install-deps.sh"), "web"], check=True)

    outdir = results_dir("web", a.preset, a.name)
    jsonl = os.path.join(outdir, "web.jsonl")
    if os.path.exists(jsonl):  # a run of the same name before: keep it aside
        os.rename(jsonl, jsonl + f".{int(time.time())}.old")
    todo = cells(preset)
    if a.no_bridge:
        todo = [c for c in todo if c[0] != "bridge"]
    env = environment(a.preset, {"experiment": "web", "preset_values": preset,
                                 "slice_ms": a.slice_ms, "idle_us": a.idle_us,
                                 "buffer_bytes": a.buffer_bytes, "cells": todo})
    write_jsonl(jsonl, {"run": env})
    print(f"[web] results in {outdir}")
    print(f"[web] {env['uptime']}")

    records = []
    with Topology("vsa") as topo:
        host = AppHost(topo, ["web", "db"], slice_ms=a.slice_ms, idle_us=a.idle_us,
                       buffer_bytes=a.buffer_bytes)
        vm_of_ip = {ip: name for name, ip in host.ips.items()}
        print("[web] starting PostgreSQL and loading the auction data", flush=True)
        host.forward("bridge" if not a.no_bridge else "vsnoop", 1)
        db = Database(topo, host.ns("db"), host.ips["db"], host.workdir)
        db.populate()
        web = WebTier(topo, host.ns("web"), host.ips["web"], host.ips["db"], host.workdir,
                      pool=preset["connections"] * 2)
        total = preset["reps"] * len(todo) * (len(preset["types"]))
        with measurement_lock():
            env_locked = {"uptime_at_lock": apphost.uptime()}
            write_jsonl(jsonl, {"run_locked": env_locked})
            progress = Progress(total)
            for rep in range(preset["reps"]):
                for mode, k in todo:
                    stages = [time.monotonic()]
                    web.stop_app()
                    host.forward(mode, k)
                    stages.append(time.monotonic())
                    db.reset()
                    stages.append(time.monotonic())
                    web.start_app()
                    stages.append(time.monotonic())
                    web.check(host.client)
                    stages.append(time.monotonic())
                    run_wrk(host.client, web.url, "mix", preset["warmup"], preset["connections"], 999)
                    stages.append(time.monotonic())
                    write_jsonl(jsonl, {"cell_setup": {"mode": mode, "k": k, "seconds": dict(zip(
                        ["forward", "db_reset", "app_start", "check", "warmup"],
                        [round(b - a, 2) for a, b in zip(stages, stages[1:])]))}})
                    for t in preset["types"]:
                        progress.step(f"rep {rep + 1} {mode} k={k} {t}")
                        before = snapshot(host)
                        flows_before = flow_stats(host)
                        load = ForeignLoad(host.own_pids).start()
                        up = apphost.uptime()
                        w = run_wrk(host.client, web.url, t, preset["duration"], preset["connections"],
                                    seed=rep + 1)
                        foreign = load.stop()
                        after = snapshot(host)
                        rec = {"rep": rep, "mode": mode, "k": k, "type": t, "wrk": w,
                               "counters": counters_delta(before, after),
                               "flows": flow_delta(flows_before, flow_stats(host), vm_of_ip),
                               "foreign_cpu": foreign, "uptime": up}
                        records.append(rec)
                        write_jsonl(jsonl, rec)
            progress.end()
        web.stop_app()
    rows = summarize(records, preset["types"])
    print_and_write_summary(outdir, rows, preset["ks"], preset["types"])
    png = plot(outdir, rows, preset["ks"], preset["types"])
    print(f"[web] wrote {jsonl}, {os.path.join(outdir, 'web.csv')}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
