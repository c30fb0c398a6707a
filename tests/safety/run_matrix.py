#!/usr/bin/python3
"""The transfer matrix: real Linux TCP from a sender namespace through vsnoop-impair and
vsnoopd into a VM namespace, every transfer checked byte for byte and its captures checked
by tshark (see checks.py).

    run_matrix.py --smoke              about a minute: the subset `make test` runs
    run_matrix.py --full               every profile x impairment x k (the documented run)
    run_matrix.py --case NAME --keep   one case, its files kept, to replay a failure
    run_matrix.py --list [--full]      the case names

A case is a profile (the sender's TCP options, congestion control, IP version, MTU,
offloads), an impairment (none, 1% loss, 5% bursty loss, reordering, duplication, 20 ms
delay; CE marks for ECN profiles) and k (VMs sharing the core, emulated). Its seed comes from
its name, so a failure replays with --case. Timing-sensitive cases (the delay) take
/tmp/vsnoop-measure.lock. Needs root; prints one JSON line per case to --out and a summary.
"""
import argparse
import json
import os
import shutil
import sys
import time
import traceback
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
import safetylab as lab  # noqa: E402

BASE = {"sack": 1, "timestamps": 1, "wscale": 1, "ecn": 0, "cc": "cubic", "ipv6": False,
        "mtu": 1500, "offloads": True}

# One factor at a time from BASE, everything on and everything off, and pairs of the
# dimensions that change the frames the datapath sees (IP version, MTU, offloads).
PROFILES = {
    "base": {},
    "nosack": {"sack": 0},
    "nots": {"timestamps": 0},
    "nows": {"wscale": 0},
    "ecn": {"ecn": 1},
    "alloff": {"sack": 0, "timestamps": 0, "wscale": 0, "ecn": 0},
    "allon": {"ecn": 1},
    "reno": {"cc": "reno"},
    "bbr": {"cc": "bbr"},
    "v6": {"ipv6": True},
    "mtu9000": {"mtu": 9000},
    "nogso": {"offloads": False},
    "v6-mtu9000": {"ipv6": True, "mtu": 9000},
    "v6-nogso": {"ipv6": True, "offloads": False},
    "mtu9000-nogso": {"mtu": 9000, "offloads": False},
    "alloff-reno-v6": {"sack": 0, "timestamps": 0, "wscale": 0, "cc": "reno", "ipv6": True},
    "ecn-bbr-nogso": {"ecn": 1, "cc": "bbr", "offloads": False},
}
# "allon" equals "ecn" in options but runs with every option named explicitly on.

IMPAIRMENTS = dict(lab.IMPAIRMENTS)
ECN_ONLY = {"ce": ["--ce-mark", "0.01"]}  # CE marks, for profiles that negotiate ECN

# The smoke (make test): every impairment, both values of k, both IP versions, options
# off and on, jumbo frames and no offloads, in about a minute.
SMOKE = [
    ("base", "none", 3), ("base", "loss1", 3), ("base", "burst5", 3), ("base", "reorder", 3),
    ("base", "duplicate", 3), ("base", "delay20", 1), ("v6-nogso", "loss1", 1),
    ("alloff-reno-v6", "reorder", 3), ("ecn", "ce", 3), ("mtu9000", "none", 1),
]


def case_name(profile, impairment, k):
    return f"{profile}/{impairment}/k{k}"


def all_cases(full):
    if not full:
        return [case_name(*c) for c in SMOKE]
    names = []
    for profile, over in PROFILES.items():
        impairments = list(IMPAIRMENTS) + (list(ECN_ONLY) if {**BASE, **over}["ecn"] else [])
        for impairment in impairments:
            for k in (1, 3):
                names.append(case_name(profile, impairment, k))
    return names


def parse_case(name):
    profile, impairment, k = name.split("/")
    return profile, impairment, int(k[1:])


def run_case(name, nbytes, keep=False, timeout=180, baseline=False, measure_lock=True):
    profile, impairment, k = parse_case(name)
    p = {**BASE, **PROFILES[profile]}
    flags = IMPAIRMENTS.get(impairment, ECN_ONLY.get(impairment))
    seed = zlib.crc32(name.encode()) & 0x7FFFFFFF
    workdir = lab.new_workdir("case")
    result = {"case": name, "seed": seed, "bytes": nbytes, "ok": False, "problems": [],
              "workdir": workdir if keep else None}
    sender_sysctls = {"net.ipv4.tcp_sack": p["sack"], "net.ipv4.tcp_timestamps": p["timestamps"],
                      "net.ipv4.tcp_window_scaling": p["wscale"], "net.ipv4.tcp_ecn": p["ecn"]}
    sender_ip = lab.sender_address(p["ipv6"])
    t0 = time.monotonic()
    try:
        with lab.MeasureLock(take=measure_lock and impairment in lab.TIMING_SENSITIVE), \
                lab.Topology("vssm") as topo:
            host = lab.SafetyHost(topo, workdir, ipv6=p["ipv6"], mtu=p["mtu"], offloads=p["offloads"],
                                  sender_sysctls=sender_sysctls, impair=flags, seed=seed)
            vsnoopd = host.start_vsnoopd(k=k, extra=["--no-vsnoop"] if baseline else [])
            host.start_impair()
            sink = lab.Sink(topo, host.vms[0], port=5001)
            host.start_captures()
            sent, got = lab.checked_flow(host.sender, sink, lab.vm_address(1, p["ipv6"]), nbytes,
                                         seed=seed, cc=p["cc"], timeout=timeout)
            time.sleep(0.3)  # the last ACKs and FINs cross the link
            flow = lab.flow_of(vsnoopd, 5001)
            stats = vsnoopd.stats()
            drops = host.stop_captures()
            impair_stats = host.stop_impair()
            code = host.stop_vsnoopd()
            sink.stop()
            result.update({
                "seconds": round(time.monotonic() - t0, 2),
                "transfer": {k2: sent[k2] for k2 in ("seconds", "mbps", "retransmits", "rtt_ms_mean")},
                "sha256_ok": True,
                "flow_state": flow["state"] if flow else None,
                "flow_early_acks": flow["stats"]["early_acks"] if flow else 0,
                "early_acks": stats["engine"]["early_acks"],
                "suppressed": stats["engine"]["guest_acks_suppressed"],
                "window_updates": stats["engine"]["window_updates"],
                "reasons": stats["engine"]["reasons"],
                "internal_bugs": stats["bridge"]["internal_bugs"],
                "dropped_no_room": stats["guests"][0]["counters"]["frames_dropped_no_room"],
                "impair": {d: {x: v.get(x) for x in ("offered", "lost_random", "lost_burst", "duplicated",
                                                     "reordered", "ce_marked")}
                           for d, v in impair_stats.items()},
                "capture_drops": drops,
                "vsnoopd_exit": code,
            })
            problems = []
            if any(drops.values()):
                problems.append(f"tcpdump dropped packets {drops}: the capture checks cannot be trusted")
            if code != 0:
                problems.append(f"vsnoopd exited {code} (3: it reported an internal bug)")
            if result["internal_bugs"]:
                problems.append(f"internal_bugs = {result['internal_bugs']}")
            if not flow:
                problems.append("the flow is not in vsnoopd's table after the transfer")
            elif flow["state"] not in ("CLOSING", "CLOSED"):
                problems.append(f"final flow state {flow['state']}, expected CLOSING (the sender's FIN seen)")
            if result["flow_early_acks"] == 0 and not baseline:
                problems.append("vSnoop acknowledged nothing early on this flow: the case tests nothing")
            figures, check_problems = checks.all_checks(workdir, sender_ip)
            result["checks"] = figures
            problems += check_problems
            result["problems"] = problems
            result["ok"] = not problems
    except Exception as e:  # a failed transfer, a crash: the case fails with the reason
        result["problems"].append(f"{type(e).__name__}: {e}")
        result["traceback"] = traceback.format_exc()[-2000:]
        result["seconds"] = round(time.monotonic() - t0, 2)
    if result["ok"] and not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        result["workdir"] = workdir
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="the subset make test runs (default)")
    mode.add_argument("--full", action="store_true", help="every profile x impairment x k")
    mode.add_argument("--case", action="append", help="run only this case (repeatable)")
    ap.add_argument("--list", action="store_true", help="print the case names and exit")
    ap.add_argument("--bytes", type=int, default=None, help="bytes per transfer (smoke 1 MiB, full 8 MiB)")
    ap.add_argument("--out", default=None, help="JSON lines, one per case")
    ap.add_argument("--keep", action="store_true", help="keep every case's captures")
    ap.add_argument("--no-measure-lock", action="store_true",
                    help="do not take the measurement lock for timing-sensitive cases (their figures are "
                         "then not measurements; make test uses this)")
    ap.add_argument("--baseline", action="store_true",
                    help="run vsnoopd with --no-vsnoop (same path, nothing acknowledged early): for comparison")
    a = ap.parse_args()

    names = a.case if a.case else all_cases(a.full)
    if a.list:
        print("\n".join(names))
        return 0
    lab.require_root()
    lab.require_binaries()
    nbytes = a.bytes or ((8 << 20) if a.full else (1 << 20))
    out = open(a.out, "w") if a.out else None
    results = []
    started = time.monotonic()
    lab.progress(0, len(names), "starting")
    for i, name in enumerate(names, start=1):
        r = run_case(name, nbytes, keep=a.keep, baseline=a.baseline, measure_lock=not a.no_measure_lock)
        results.append(r)
        if out:
            out.write(json.dumps(r) + "\n")
            out.flush()
        lab.progress(i, len(names), f"{name} {'ok' if r['ok'] else 'FAILED'} ({r.get('seconds', 0)} s)")
        if not r["ok"]:
            print(f"FAILED {name} (seed {r['seed']}, files in {r['workdir']}):", file=sys.stderr)
            for p in r["problems"]:
                print(f"  {p}", file=sys.stderr)
    passed = sum(r["ok"] for r in results)
    verified = sum(r["bytes"] for r in results if r.get("sha256_ok"))
    summary = {
        "cases": len(results), "passed": passed, "failed": len(results) - passed,
        "transfers": sum(1 for r in results if "sha256_ok" in r),
        "bytes_verified": verified,
        "impairment_cases": sum(1 for r in results if not r["case"].split("/")[1] == "none"),
        "early_acks": sum(r.get("early_acks", 0) for r in results),
        "generated_acks_checked": sum(r.get("checks", {}).get("generated_acks_checked", 0) for r in results),
        "acks_window_checked": sum(r.get("checks", {}).get("acks_checked", 0) for r in results),
        "frames_lost_by_impairment": sum(sum((v.get("lost_random") or 0) + (v.get("lost_burst") or 0)
                                             for v in r.get("impair", {}).values()) for r in results),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "load": os.getloadavg()[0],
    }
    print(json.dumps(summary))
    print(f"safety matrix: {passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
