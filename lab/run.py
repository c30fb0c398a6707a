#!/usr/bin/python3
"""vSnoop's consolidation lab: TCP flows into a VM that shares its core with other VMs,
through vsnoopd with vSnoop on, with it off, and through the Linux bridge, side by side.

    lab/run.py --preset demo                  # emulated VMs, a few minutes (make demo)
    lab/run.py --preset full --name full      # the emulated matrix (hours; resumable)
    lab/run.py --preset qemu --name qemu      # the qemu matrix (hours; resumable)
    lab/run.py --preset buffer --name buffer  # throughput against the per-VM buffer
    lab/run.py --list                         # the presets
    lab/run.py --report results/full          # redo the CSVs, table and plots of a run

Results go to results/<name>/: raw.jsonl (one line per flow, appended as flows finish),
summary.csv, cells.csv, table.txt, run.json and PNG plots. Running the same --name again
resumes: flows that already have a result are skipped. Needs root (network namespaces),
vsnoopd built (build/release, or $VSNOOP_BUILD), and for qemu presets the lab guest
(lab/guest/build.sh).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vsnooplab import matrix, paths, report, runner  # noqa: E402


def parse_size(text):
    text = text.strip().upper().rstrip("B")
    mult = {"K": matrix.KB, "M": matrix.MB, "G": 1024 * matrix.MB}
    if text and text[-1] in mult:
        return int(float(text[:-1]) * mult[text[-1]])
    return int(text)


def machine_info():
    def out(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": cpu,
        "memory": out(["sh", "-c", "free -h | awk '/Mem:/ {print $2}'"]),
        "os": out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "qemu": out(["sh", "-c", "qemu-system-x86_64 --version 2>/dev/null | head -n 1"]),
        "git": out(["git", "-C", paths.REPO, "describe", "--always", "--dirty"]),
        "uptime": out(["uptime"]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(matrix.PRESETS), help="what to measure")
    ap.add_argument("--name", help="run name: results/<name>/ (default: preset and time)")
    ap.add_argument("--out", default=os.path.join(paths.REPO, "results"), help="results directory")
    ap.add_argument("--ks", help="VMs per core, e.g. 1,3 (default: the preset's)")
    ap.add_argument("--sizes", help="flow sizes, e.g. 1M,16M (default: the preset's)")
    ap.add_argument("--runs", type=int, help="repetitions per cell (default: the preset's)")
    ap.add_argument("--cc", help="sender congestion controls, e.g. cubic,reno")
    ap.add_argument("--modes", help="bridge,vsnoop-off,vsnoop (default: the preset's)")
    ap.add_argument("--variants", help="only these of the preset's variants, e.g. rmem16m "
                                       "(default: all, in the preset's order)")
    ap.add_argument("--redo-loaded", type=float, metavar="CPUS",
                    help="measure again flows during which other jobs used more than CPUS "
                         "(e.g. 0.5) of the machine")
    ap.add_argument("--hold-lock", action="store_true",
                    help="hold the measurement lock for the whole run (default: per host "
                         "group, so other measurements can run in between)")
    ap.add_argument("--report", metavar="DIR", help="only rebuild the report of a run")
    ap.add_argument("--markdown", metavar="VARIANT[:CC]",
                    help="with --report: print that variant's table as Markdown ('buffers': "
                         "the buffer sweep)")
    ap.add_argument("--list", action="store_true", help="list the presets")
    ap.add_argument("--quiet-table", action="store_true", help="do not print the table")
    a = ap.parse_args()

    if a.list:
        for name, p in sorted(matrix.PRESETS.items()):
            groups = matrix.expand(p)
            n = sum(len(g.flows) for g in groups)
            print(f"{name:15s} {n:5d} flows  {p.description}")
        return 0
    if a.report and a.markdown:
        variant, _, cc = a.markdown.partition(":")
        rows = report.rows(report.load_cells(a.report))
        if variant == "buffers":
            print(report.buffer_markdown(rows, cc or "cubic"))
            return 0
        kinds = sorted({r["vm_kind"] for r in rows})
        for kind in kinds:
            print(report.markdown(rows, variant, cc or "cubic", kind))
        return 0
    if a.report:
        run_info = {}
        info_path = os.path.join(a.report, "run.json")
        if os.path.exists(info_path):
            with open(info_path) as f:  # one JSON line per (re)start: the last one counts
                lines = [line for line in f if line.strip()]
            run_info = json.loads(lines[-1]) if lines else {}
        finish(a.report, run_info.get("summary_variant", "default"), a.quiet_table)
        return 0
    if not a.preset:
        ap.error("--preset is required (or --list, --report)")
    if os.geteuid() != 0:
        print("lab/run.py needs root (network namespaces, veth pairs, qemu taps)", file=sys.stderr)
        return 77
    if not os.path.exists(paths.VSNOOPD):
        print(f"vsnoopd not found at {paths.VSNOOPD}: build first (make build), or set "
              f"VSNOOP_BUILD", file=sys.stderr)
        return 1
    preset = matrix.PRESETS[a.preset]
    groups = matrix.expand(
        preset,
        ks=[int(x) for x in a.ks.split(",")] if a.ks else None,
        sizes=[parse_size(x) for x in a.sizes.split(",")] if a.sizes else None,
        runs=a.runs, ccs=a.cc.split(",") if a.cc else None,
        modes=tuple(a.modes.split(",")) if a.modes else None,
        variants=a.variants.split(",") if a.variants else None)
    name = a.name or f"{preset.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    out_dir = os.path.join(a.out, name)
    os.makedirs(out_dir, exist_ok=True)
    if preset.vm_kind == "qemu":
        from vsnooplab import qemu
        qemu.build_guest()
    info = {"preset": preset.name, "description": preset.description,
            "summary_variant": preset.summary_variant, "argv": sys.argv,
            "vsnoopd": paths.VSNOOPD, "slice_ms": preset.slice_ms,
            "neighbours": preset.neighbours, "wake_passes": preset.wake_passes,
            "idle_us": preset.idle_us,
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": machine_info()}
    with open(os.path.join(out_dir, "run.json"), "a") as f:  # one line per (re)start
        f.write(json.dumps(info) + "\n")
    print(f"vSnoop lab: preset {preset.name} ({preset.description}); results in {out_dir}",
          file=sys.stderr)
    print(f"load: {info['machine']['uptime']}", file=sys.stderr)
    lab = runner.Lab(preset, groups, out_dir, redo_loaded=a.redo_loaded, hold_lock=a.hold_lock)
    try:
        lab.run()
    finally:
        finish(out_dir, preset.summary_variant, a.quiet_table)
    return 0


def finish(out_dir, summary_variant, quiet):
    rows = report.write_csvs(out_dir, summary_variant)
    text = report.table(rows)
    with open(os.path.join(out_dir, "table.txt"), "w") as f:
        f.write(text.lstrip("\n") + "\n")
    try:
        report.plots(out_dir, rows)
    except ImportError as e:
        print(f"no plots: {e} (install python3-matplotlib)", file=sys.stderr)
    if not quiet:
        print(text)
    print(f"\nresults: {out_dir} (summary.csv, cells.csv, table.txt, raw.jsonl, *.png)")


if __name__ == "__main__":
    sys.exit(main())
