#!/usr/bin/python3
"""Turns vsnoop_bench's JSON output into the table of docs/performance.md.

    build/release/bench/vsnoop_bench --benchmark_repetitions=5 \
        --benchmark_report_aggregates_only=true --benchmark_out=bench.json
    bench/compare.py bench.json

For each benchmark: the median time per segment (or per lookup) over the repetitions, its
coefficient of variation, and its ratio to BM_Baseline's median from the same run. The time
is CPU time by default (what the benchmark's thread used: on a shared machine wall time also
counts the time other processes held the core); --time real takes wall time. For the
early-ACK path it also checks the targets: at most 2x the baseline and under 100 ns per
segment, and flat from 1k to 1M flows (within 20% of the 1k-flow time). Works on a run
without repetitions too (the median of the iterations reported).
"""

import argparse
import json
import statistics
import sys

BASELINE = "BM_Baseline"
TARGET_RATIO = 2.0
TARGET_NS = 100.0
FLAT_RATIO = 1.2  # "flat": 1M flows within 20% of 1k flows (twice the noise between runs)

UNIT_TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def medians(report, field):
    """{run_name: (median ns, cv or None, error or None)} in the order the benchmarks ran."""
    per_run = {}
    for b in report["benchmarks"]:
        if b.get("error_occurred"):
            per_run.setdefault(b["run_name"], {"error": b.get("error_message", "error")})
            continue
        entry = per_run.setdefault(b["run_name"], {"times": []})
        if "error" in entry:
            continue
        ns = b[field] * UNIT_TO_NS[b.get("time_unit", "ns")]
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                entry["median"] = ns
            elif b.get("aggregate_name") == "cv":
                entry["cv"] = b[field]  # a fraction, whatever the unit says
        else:
            entry["times"].append(ns)
    result = {}
    for name, entry in per_run.items():
        if "error" in entry:
            result[name] = (None, None, entry["error"])
            continue
        median = entry.get("median")
        if median is None and entry["times"]:
            median = statistics.median(entry["times"])
        cv = entry.get("cv")
        if cv is None and len(entry["times"]) > 1:
            cv = statistics.stdev(entry["times"]) / statistics.mean(entry["times"])
        result[name] = (median, cv, None)
    return result


def early_ack_verdict(name, ns, ratio, rows):
    """The issue's targets for the early-ACK path, or '' for other benchmarks."""
    if not name.startswith("BM_EarlyAck/"):
        return ""
    checks = []
    checks.append(("<= 2x" if ratio <= TARGET_RATIO else "> 2x"))
    checks.append(("< 100 ns" if ns < TARGET_NS else ">= 100 ns"))
    if name.endswith("/flows:1000000"):
        reference = rows.get(name.replace("/flows:1000000", "/flows:1000"))
        if reference and reference[0]:
            growth = ns / reference[0]
            checks.append(f"{growth:.2f}x of 1k flows ({'flat' if growth <= FLAT_RATIO else 'not flat'})")
    met = ratio <= TARGET_RATIO and ns < TARGET_NS
    return ("met: " if met else "not met: ") + ", ".join(checks)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="vsnoop_bench --benchmark_out file")
    parser.add_argument("--time", choices=["cpu", "real"], default="cpu",
                        help="CPU time (default) or wall time")
    args = parser.parse_args()
    with open(args.json) as f:
        report = json.load(f)
    rows = medians(report, "cpu_time" if args.time == "cpu" else "real_time")
    baseline = rows.get(BASELINE, (None, None, None))[0]
    if not baseline:
        sys.exit(f"compare.py: no {BASELINE} result in {args.json}")

    context = report.get("context", {})
    print(f"Run: {context.get('date', '?')}, {context.get('num_cpus', '?')} CPUs at "
          f"{context.get('mhz_per_cpu', '?')} MHz, load average "
          f"{', '.join(f'{x:.2f}' for x in context.get('load_avg', []))}")
    print()
    print(f"| benchmark | median {args.time} ns | CV | x baseline | target (early-ACK path) |")
    print("|---|---:|---:|---:|---|")
    for name, (ns, cv, error) in rows.items():
        if error:
            print(f"| {name} | error: {error} | | | |")
            continue
        ratio = ns / baseline
        cv_text = f"{cv * 100:.1f}%" if cv is not None else ""
        print(f"| {name} | {ns:.1f} | {cv_text} | {ratio:.2f} | "
              f"{early_ack_verdict(name, ns, ratio, rows)} |")


if __name__ == "__main__":
    main()
