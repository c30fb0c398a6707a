#!/usr/bin/python3
"""A flood of spoofed SYNs and data segments on random 4-tuples into vsnoopd's uplink, while
an established, accelerated connection transfers data to the same guest.

    flood_test.py [--count 1000000] [--max-flows 4096] [--rounds 2] [--ipv6] [--json FILE]
                  [--random-src-mac] [--no-memory-check]

Checks: the flow table never holds more than --max-flows (sampled during the flood with
vsnoopctl --json stats); vsnoopd's peak RSS (VmHWM) does not grow from one flood round to the
next (the first round may touch ring and buffer pages for the first time; any growth after
that would be per-flow or per-frame memory); the accelerated connection keeps its flow
(ACTIVE, NO_BUFFER or UNEXPECTED_SEQ) and keeps getting early ACKs while the flood runs, and
completes with the right SHA-256; vsnoopd reports no internal bug. Takes the measurement lock
(the flood would disturb anyone else's measurement) unless --no-measure-lock.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetylab as lab  # noqa: E402

ACCELERATED = {"ACTIVE", "NO_BUFFER", "UNEXPECTED_SEQ"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000, help="frames per flood round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-flows", type=int, default=4096)
    ap.add_argument("--ipv6", action="store_true")
    ap.add_argument("--k", type=int, default=3, help="VMs sharing the guest's core (emulated)")
    ap.add_argument("--random-src-mac", action="store_true", help="a new source MAC per flood frame")
    ap.add_argument("--rate", type=int, default=0, help="flood frames per second (0: as fast as possible)")
    ap.add_argument("--no-memory-check", action="store_true",
                    help="report VmHWM but do not check it (sanitizer builds keep freed memory in quarantine)")
    ap.add_argument("--no-measure-lock", action="store_true",
                    help="do not take the measurement lock (make test: its figures are not recorded)")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    lab.require_root()
    lab.require_binaries(lab.FLOOD)

    workdir = lab.new_workdir("flood")
    report = {"count_per_round": a.count, "rounds": a.rounds, "max_flows": a.max_flows, "ipv6": a.ipv6,
              "k": a.k, "random_src_mac": a.random_src_mac, "problems": []}
    problems = report["problems"]
    with lab.MeasureLock(take=not a.no_measure_lock), lab.Topology("vssl") as topo:
        host = lab.SafetyHost(topo, workdir, ipv6=a.ipv6, offloads=True)
        vsnoopd = host.start_vsnoopd(k=a.k, extra=["--max-flows", str(a.max_flows)], pcap_out=False)
        pid = vsnoopd.proc.pid
        sink = lab.Sink(topo, host.vms[0], port=5001)
        vm_ip = lab.vm_address(1, a.ipv6)
        vm_mac = host.vms[0].exec("cat", "/sys/class/net/eth0/address").strip()
        snd_mac = host.sender.exec("cat", "/sys/class/net/eth0/address").strip()
        report["vmhwm_kib_start"] = lab.vmhwm_kib(pid)

        # The accelerated connection: it sends until the flood rounds are over.
        stop_file = os.path.join(workdir, "stop")
        sender = topo.spawn(host.sender, [lab.paths.PYTHON, os.path.join(lab.HERE, "streamsend.py"), "--to", vm_ip,
                                          "--port", "5001", "--seed", "5", "--stop-file", stop_file], cpu=0)
        if not sender.stdout.readline():
            raise RuntimeError(f"streamsend did not connect: {sender.stderr.read()}")
        lab.wait_for(lambda: (lambda f: f is not None and f["stats"]["early_acks"] > 100)(
            lab.flow_of(vsnoopd, 5001)), 30, "the connection to be accelerated")
        report["vmhwm_kib_before_flood"] = lab.vmhwm_kib(pid)

        samples = []
        rounds = []
        for rnd in range(a.rounds):
            argv = [lab.FLOOD, "--interface", "eth0", "--dst-mac", vm_mac, "--src-mac", snd_mac,
                    "--dst-ip", vm_ip, "--count", str(a.count), "--seed", str(100 + rnd)]
            if a.random_src_mac:
                argv.append("--random-src-mac")
            if a.rate:
                argv += ["--rate", str(a.rate)]
            def sample():
                flow = lab.flow_of(vsnoopd, 5001)
                stats = vsnoopd.stats()
                samples.append({"round": rnd, "t": time.monotonic(),
                                "flows_total": stats["engine"]["flows"]["total"],
                                "state": flow and flow["state"],
                                "early_acks": flow and flow["stats"]["early_acks"]})
            # A sample as each round starts and as it ends, and as many as fit in between
            # (a sanitizer build answers slowly with a full table).
            sample()
            flood = topo.spawn(host.sender, argv, cpu=1)
            while flood.poll() is None:
                sample()
                time.sleep(0.25)
            sample()
            out, err = flood.communicate()
            if flood.returncode != 0:
                raise RuntimeError(f"vsnoop-flood failed: {err}")
            topo.processes.remove(flood)
            stats = vsnoopd.stats()
            rounds.append({"flood": json.loads(out), "vmhwm_kib": lab.vmhwm_kib(pid),
                           "flows_total": stats["engine"]["flows"]["total"],
                           "flows_by_state": stats["engine"]["flows"]["by_state"],
                           "flows_created": stats["engine"]["flows_created"],
                           "flows_evicted": stats["engine"]["flows_evicted"],
                           "flow_table_full": stats["engine"]["reasons"].get("flow_table_full", 0),
                           "mac_addresses": stats["bridge"]["mac_addresses"],
                           "frames_dropped_no_room": stats["guests"][0]["counters"]["frames_dropped_no_room"]})
        report["rounds"] = rounds
        # After the flood: the connection gets early ACKs again within five seconds (the
        # sender may first sit out a retransmission timeout for what the flood made drop).
        after_flood = lab.flow_of(vsnoopd, 5001)
        report["after_flood"] = []
        for _ in range(20):
            time.sleep(0.25)
            f = lab.flow_of(vsnoopd, 5001)
            report["after_flood"].append(f and {k: f[k] for k in ("state", "rcv_nxt", "rcv_high", "guest_ack",
                                                                   "guest_right_edge", "vsnoop_ack")}
                                         | {"early_acks": f["stats"]["early_acks"], "no_room": f["stats"]["no_room"],
                                            "segments": f["stats"]["segments_to_guest"]})
        resumed = lab.flow_of(vsnoopd, 5001)
        report["early_acks_in_5s_after_flood"] = (resumed["stats"]["early_acks"] - after_flood["stats"]["early_acks"]
                                                  if resumed and after_flood else None)
        open(stop_file, "w").close()
        line = sender.stdout.readline()
        sent = json.loads(line) if line else None
        got = sink.next_result() if sent else None
        final = vsnoopd.stats()
        report["internal_bugs"] = final["bridge"]["internal_bugs"]
        report["vmhwm_kib_end"] = lab.vmhwm_kib(pid)
        code = host.stop_vsnoopd()
        sink.stop()

    # The verdict.
    if not sent:
        problems.append("the accelerated transfer did not finish")
    else:
        ok = got["bytes"] == sent["bytes"] and got["sha256"] == sent["sha256"]
        report["transfer"] = {"bytes": sent["bytes"], "sha256_ok": ok, "seconds": sent["seconds"],
                              "mbps": sent["mbps"]}
        if not ok:
            problems.append(f"the guest read {got['bytes']} bytes (sha256 {got['sha256']}), "
                            f"sent {sent['bytes']} ({sent['sha256']})")
    report["samples"] = len(samples)
    report["max_flows_seen"] = max([s["flows_total"] for s in samples] + [r["flows_total"] for r in rounds])
    if report["max_flows_seen"] > a.max_flows:
        problems.append(f"the flow table held {report['max_flows_seen']} flows, capacity {a.max_flows}")
    lost = [s for s in samples if s["state"] not in ACCELERATED]
    if lost:
        problems.append(f"the accelerated flow was not accelerated in {len(lost)} of {len(samples)} samples "
                        f"(first: {lost[0]})")
    # Early ACKs keep coming: the count rises during each round (between its first and last
    # sample) when the flood leaves the guest's buffer room for the connection's data (a paced
    # flood), and in any case again right after the flood. A flood at full speed fills the
    # guest's buffer with its own frames, so the connection's data is dropped (never
    # acknowledged) and it is the guest that recovers the holes.
    for rnd in range(a.rounds):
        in_round = [s for s in samples if s["round"] == rnd and s["early_acks"] is not None]
        if len(in_round) < 2:
            problems.append(f"flood round {rnd} was too short to sample twice: raise --count")
            continue
        rounds[rnd]["early_acks_during_round"] = in_round[-1]["early_acks"] - in_round[0]["early_acks"]
        if a.rate and rounds[rnd]["early_acks_during_round"] <= 0:
            problems.append(f"no early ACKs for the accelerated flow during paced flood round {rnd}")
    if not report["early_acks_in_5s_after_flood"]:
        problems.append("the accelerated flow got no early ACKs in the 5 s after the flood")
    growth = rounds[-1]["vmhwm_kib"] - rounds[0]["vmhwm_kib"]
    report["vmhwm_growth_after_first_round_kib"] = growth
    if not a.no_memory_check and growth > 1024:
        problems.append(f"vsnoopd's peak RSS grew by {growth} KiB between flood rounds")
    if report["internal_bugs"] or code != 0:
        problems.append(f"vsnoopd reported internal bugs ({report['internal_bugs']}), exit {code}")
    report["ok"] = not problems
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    print(json.dumps(report))
    lab.shutil.rmtree(workdir, ignore_errors=True)
    print(f"flood: {1 if report['ok'] else 0} passed, {0 if report['ok'] else 1} failed")
    for p in problems:
        print(f"  {p}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
