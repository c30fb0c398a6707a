#!/usr/bin/python3
"""Faults: vsnoopd restarted in the middle of transfers, a VM that goes away and comes back,
and a VM that does not run for seconds while data keeps coming.

    faults.py [--quick] [--qemu] [--only NAME] [--json FILE]

  restart_sigterm / restart_sigkill  a transfer runs; vsnoopd is stopped (or killed) and
        started again. The transfer must complete with the right SHA-256; the new vsnoopd
        finds the connection mid-stream and leaves it alone (MID_STREAM, no early ACK); a new
        connection afterwards is accelerated.
  vm_namespace_deleted  two VMs receive; one VM's namespace is deleted mid-transfer (its
        veth goes with it). vsnoopd keeps running without spinning, the other VM's transfer
        completes and keeps its early ACKs; the gone VM's flows are cleaned up; a VM created
        again with the same interface name receives an accelerated transfer.
  vm_off_core_for_seconds  the VM is off its core for 1.5 s at a time (emulated, vms=2,
        slice 1.5 s, its turn second, buffer 256 KiB) while a transfer runs: the buffer stays
        full for seconds in all, every acknowledged byte reaches the VM (captures checked by
        tshark; frames that do not fit are dropped and never acknowledged), early ACKs
        resume when the VM runs, the transfer completes intact.
  qemu_killed (--qemu)  a qemu guest on vsnoopd's stream socket is killed (SIGKILL) in the
        middle of a transfer while a namespace VM receives too: vsnoopd forgets the qemu
        guest's flows, the other VM is unaffected, a new qemu receives an accelerated transfer.

Each scenario that finds a known engine or daemon problem marks its check with
known_issue: it is expected to fail until the problem is fixed (XFAIL); when it passes, the
output says XPASS (review the mark) and the run still passes. docs/testing.md lists them.
"""
import argparse
import json
import os
import re
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
import safetylab as lab  # noqa: E402

ACCELERATED = {"ACTIVE", "NO_BUFFER", "UNEXPECTED_SEQ"}
HERE = os.path.dirname(os.path.abspath(__file__))


class Stream:
    """streamsend.py in the sender namespace toward a sink: runs until stop()."""

    def __init__(self, topo, host, vm_index, sink, workdir, seed, ipv6=False, timeout=60):
        self.stop_file = os.path.join(workdir, f"stop-{vm_index}-{seed}")
        self.sink = sink
        self.topo = topo
        # --timeout bounds each socket call: a stalled connection ends the sender.
        self.proc = topo.spawn(host.sender, [lab.paths.PYTHON, os.path.join(HERE, "streamsend.py"), "--to",
                                             lab.vm_address(vm_index, ipv6), "--port", str(sink.port),
                                             "--seed", str(seed), "--stop-file", self.stop_file,
                                             "--timeout", str(timeout)], cpu=0)
        if not self.proc.stdout.readline():
            raise RuntimeError(f"streamsend did not connect: {self.proc.stderr.read()}")

    def stop(self, timeout=120):
        """Ends the stream; returns (sent, received) reports, or (None, None) when the
        stream did not finish within `timeout` seconds (the sender is then killed)."""
        open(self.stop_file, "w").close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.1)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.topo.processes.remove(self.proc)
        line = self.proc.stdout.readline()
        if not line or self.proc.returncode != 0:
            return None, None
        sent = json.loads(line)
        got = self.sink.next_result()
        return sent, got


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counter_changes(before, after):
    """The bridge's and each guest's counters that moved between two stats replies."""
    pairs = [("bridge", before["bridge"], after["bridge"])]
    pairs += [(g["name"], b["counters"], g["counters"])
              for b, g in zip(before["guests"], after["guests"])]
    return {f"{name}.{k}": v - old.get(k, 0)
            for name, old, new in pairs for k, v in new.items()
            if isinstance(v, (int, float)) and v != old.get(k)}


def idle_cpu(vsnoopd, pid, windows=6, window_s=1.0, limit_s=0.1):
    """Whether vsnoopd, with no traffic left for it, settles to sleeping in poll: some
    one-second window within `windows` uses less than `limit_s` CPU seconds. A loop that
    spins never settles; work still draining on a loaded machine (retransmissions to the
    gone VM, a late namespace teardown) does. Every window's figure and the counters that
    moved in the last one are kept, so a failure says what kept the daemon awake."""
    seen = []
    moved = {}
    for _ in range(windows):
        stats_before = vsnoopd.stats()
        cpu_before = cpu_seconds(pid)
        time.sleep(window_s)
        used = cpu_seconds(pid) - cpu_before
        seen.append(round(used, 2))
        if used < limit_s:
            return {"settled": True, "cpu_seconds_per_window": seen}
        moved = counter_changes(stats_before, vsnoopd.stats())
    return {"settled": False, "cpu_seconds_per_window": seen, "counters_moved_last_window": moved}


def early_acks_of(vsnoopd, port):
    f = lab.flow_of(vsnoopd, port)
    return f["stats"]["early_acks"] if f else None


def stream_ok(sent, got):
    return sent is not None and got is not None and sent["bytes"] == got["bytes"] and \
        sent["sha256"] == got["sha256"]


def tcp_bytes(ns, port_filter, field):
    """A byte counter of the TCP connection matching an ss filter ("dport = :5001"), from
    the kernel's tcp_info (ss -ti): bytes_acked on the sender, bytes_received on the guest."""
    out = ns.exec("ss", "-tinH", "state", "established", port_filter, check=False)
    m = re.search(rf"\b{field}:(\d+)", out)
    return int(m.group(1)) if m else None


def acked_but_never_received(host, vm_index=1, port=5001):
    """Bytes the sender has been told were received (early ACKs included) that the guest's
    TCP stack never received: data lost after it was acknowledged. The sender is read
    first: whatever the guest receives meanwhile only lowers the figure, so a positive one
    is a true loss (once vsnoopd sends no early ACK for the connection any more)."""
    acked = tcp_bytes(host.sender, f"dport = :{port}", "bytes_acked")
    received = tcp_bytes(host.vms[vm_index - 1], f"sport = :{port}", "bytes_received")
    if acked is None or received is None:
        return None, acked, received
    # bytes_acked counts the SYN's sequence number too (RFC 9293 §3.4).
    return max(0, acked - 1 - received), acked, received


def restart(kill_signal, quick):
    """vsnoopd stopped (SIGTERM) or killed (SIGKILL) while the guest's buffer holds frames it
    acknowledged early, then started again."""
    name = f"restart_{'sigkill' if kill_signal == signal.SIGKILL else 'sigterm'}"
    r = {"scenario": name, "checks": {}, "known_issues": {}}
    c = r["checks"]
    workdir = lab.new_workdir("restart")
    with lab.Topology("vssr") as topo:
        host = lab.SafetyHost(topo, workdir, offloads=True)
        vsnoopd = host.start_vsnoopd(k=3, pcap_out=False)
        sink = lab.Sink(topo, host.vms[0], port=5001)
        stream = Stream(topo, host, 1, sink, workdir, seed=11, timeout=20)
        lab.wait_for(lambda: (early_acks_of(vsnoopd, 5001) or 0) > 50, 30, "early ACKs before the restart")
        # Stop it while the guest is off its core and vSnoop has acknowledged data the guest
        # has not (its buffer holds it): the moment a restart can lose data.
        at_stop = {}

        def acknowledged_data_in_the_buffer():
            g = vsnoopd.stats()["guests"][0]
            f = lab.flow_of(vsnoopd, 5001)
            if f is None or g["schedule"]["state"] == "running":
                return False
            ahead = (int(f["vsnoop_ack"]) - int(f["guest_ack"])) % (1 << 32)
            at_stop.update(buffer_bytes=g["buffer"]["bytes"], acknowledged_ahead_of_guest=ahead,
                           state=f["state"])
            return ahead < (1 << 31) and ahead > 128 * 1024 and g["buffer"]["bytes"] > 128 * 1024
        try:
            lab.wait_for(acknowledged_data_in_the_buffer, 20, "acknowledged data in the guest's buffer",
                         interval=0.005)
            exercised = True
        except TimeoutError:
            exercised = False  # this run never got there (a slow build): recorded, not judged
        r["at_stop"] = dict(at_stop)
        r["loss_case_exercised"] = exercised
        vsnoopd.proc.send_signal(kill_signal)
        vsnoopd.proc.wait(10)
        r["vsnoopd_exit"] = vsnoopd.proc.returncode
        topo.processes.remove(vsnoopd.proc)
        vsnoopd.log.close()
        time.sleep(0.5)  # frames in flight meanwhile are lost: the sender retransmits them
        vsnoopd = host.start_vsnoopd(k=3, pcap_out=False)
        time.sleep(2 if quick else 5)
        lost, acked, received = acked_but_never_received(host)
        r["sender_bytes_acked"] = acked
        r["guest_bytes_received"] = received
        r["acknowledged_bytes_lost"] = lost
        # vsnoopd holds the guest's buffer in its own memory. On SIGTERM it delivers it to the
        # guest before exiting (whatever the emulated schedule says); what it acknowledged
        # early and had not delivered dies with it after SIGKILL (docs/testing.md, "Known
        # problems").
        issue = None if kill_signal == signal.SIGTERM else "kill-drops-acknowledged-buffer"
        if exercised:
            if issue:
                r["known_issues"]["nothing_acknowledged_lost"] = issue
            c["nothing_acknowledged_lost"] = lost == 0
        flow = lab.flow_of(vsnoopd, 5001)
        # The new vsnoopd finds the connection mid-stream (if the sender still sends: a
        # stalled connection sends only rare window probes) and never acknowledges for it.
        c["old_connection_left_to_the_guest"] = flow is None or (
            flow["state"] in ("MID_STREAM", "PASSIVE") and flow["stats"]["early_acks"] == 0)
        r["old_flow"] = flow and {"state": flow["state"], "early_acks": flow["stats"]["early_acks"],
                                  "segments": flow["stats"]["segments_to_guest"]}
        # A healthy stream ends within a second of being told; a stalled one never does.
        sent, got = stream.stop(timeout=5 if quick else 30)
        intact = stream_ok(sent, got)
        if exercised:
            if issue:
                r["known_issues"]["transfer_complete_and_intact"] = issue
            c["transfer_complete_and_intact"] = intact
        elif not intact:
            c["transfer_complete_and_intact"] = False  # nothing was at stake, yet it broke
        r["transfer"] = sent and {"bytes": sent["bytes"], "mbps": round(sent["mbps"], 1)}
        # A new connection is accelerated (the stalled one is gone: the sender was killed).
        early_before = vsnoopd.stats()["engine"]["early_acks"]
        sink2 = lab.Sink(topo, host.vms[0], port=5002)
        lab.checked_flow(host.sender, sink2, lab.vm_address(1), (2 if quick else 8) << 20, seed=12, timeout=30)
        stats = vsnoopd.stats()
        c["new_connection_accelerated"] = stats["engine"]["early_acks"] > early_before
        c["no_internal_bug"] = stats["bridge"]["internal_bugs"] == 0 and host.stop_vsnoopd() == 0
        sink.stop()
        sink2.stop()
    lab.shutil.rmtree(workdir, ignore_errors=True)
    return r


def vm_namespace_deleted(quick):
    r = {"scenario": "vm_namespace_deleted", "checks": {}, "known_issues": {}}
    c = r["checks"]
    workdir = lab.new_workdir("vmgone")
    with lab.Topology("vssv") as topo:
        host = lab.SafetyHost(topo, workdir, guests=2, offloads=True)
        vsnoopd = host.start_vsnoopd(k=3, pcap_out=False)
        pid = vsnoopd.proc.pid
        sink1 = lab.Sink(topo, host.vms[0], port=5001)
        sink2 = lab.Sink(topo, host.vms[1], port=5002)
        s1 = Stream(topo, host, 1, sink1, workdir, seed=21)
        s2 = Stream(topo, host, 2, sink2, workdir, seed=22)
        lab.wait_for(lambda: (early_acks_of(vsnoopd, 5001) or 0) > 50 and (early_acks_of(vsnoopd, 5002) or 0) > 50,
                     30, "both connections accelerated")
        # VM 1 goes away: its namespace, its veth pair, its TCP stack. Its sink and sender
        # die with it (the sender's connection will time out: nobody is there).
        gone = host.vms[0]
        # A VM that restarts keeps its MAC address (the hypervisor's configuration holds
        # it), so the sender's ARP entry stays right.
        gone_mac = json.loads(gone.ip("-j", "link", "show", "eth0"))[0]["address"]
        for p in list(topo.processes):
            if p is sink1.proc:
                topo.stop(p)
        lab.run(["ip", "netns", "del", gone.name])
        topo.namespaces.remove(gone)
        s1.proc.kill()
        s1.proc.wait()
        topo.processes.remove(s1.proc)
        before_acks = early_acks_of(vsnoopd, 5002)
        time.sleep(2)
        c["vsnoopd_alive"] = vsnoopd.proc.poll() is None
        # The other VM is unaffected: its connection keeps getting early ACKs.
        c["other_vm_keeps_early_acks"] = (early_acks_of(vsnoopd, 5002) or 0) > (before_acks or 0)
        stats = vsnoopd.stats()
        r["gone_vm_port"] = {k: stats["guests"][0].get(k) for k in ("connected", "port", "buffer")}
        flows_gone = [f for f in vsnoopd.ctl("flows", "--limit", "100000")["flows"]
                      if f["guest"] == stats["guests"][0]["name"]]
        r["gone_vm_flows_left"] = [(f["state"], f["remote"]) for f in flows_gone]
        c["gone_vm_flows_cleaned_up"] = not flows_gone
        sent2, got2 = s2.stop()
        # With no traffic left, vsnoopd must sleep in poll: a port whose interface vanished
        # must not wake it again and again.
        idle = idle_cpu(vsnoopd, pid)
        r["vsnoopd_idle"] = idle
        c["vsnoopd_idle_after_vm_gone"] = idle["settled"]
        c["other_vm_transfer_intact"] = stream_ok(sent2, got2)
        # VM 1 comes back: a new namespace with the same interface names and address.
        back = topo.netns("vm1")
        topo.veth(back, "eth0", host.host, "vm1", up=False)
        back.ip("link", "set", "eth0", "address", gone_mac)
        for ns, ifname in ((back, "eth0"), (host.host, "vm1")):
            ns.exec("ethtool", "-K", ifname, "gro", "on", check=False)
            ns.ip("link", "set", ifname, "up")
        back.ip("addr", "add", f"{lab.vm_address(1)}/24", "dev", "eth0")
        sink1b = lab.Sink(topo, back, port=5001)
        early_before = vsnoopd.stats()["guests"][0]["counters"]["early_acks"]
        try:
            lab.checked_flow(host.sender, sink1b, lab.vm_address(1), 2 << 20, seed=23, timeout=8 if quick else 20)
            came_back = True
        except Exception as e:  # the transfer could not reach the new VM
            r["came_back_error"] = f"{type(e).__name__}: {str(e)[:200]}"
            came_back = False
        stats = vsnoopd.stats()
        back_port = stats["guests"][0]
        r["came_back_port"] = {"connected": back_port.get("connected"),
                               "reattaches": back_port["counters"]["reattaches"],
                               "early_acks": back_port["counters"]["early_acks"] - early_before,
                               "port": back_port.get("port")}
        c["vm_comes_back_accelerated"] = came_back and \
            back_port["counters"]["early_acks"] > early_before
        c["no_internal_bug"] = stats["bridge"]["internal_bugs"] == 0
        host.stop_vsnoopd()
        sink2.stop()
    lab.shutil.rmtree(workdir, ignore_errors=True)
    return r


def vm_off_core_for_seconds(quick):
    r = {"scenario": "vm_off_core_for_seconds", "checks": {}}
    c = r["checks"]
    workdir = lab.new_workdir("offcore")
    stream_seconds = 5 if quick else 20
    buffer_bytes = 256 * 1024
    with lab.Topology("vsso") as topo:
        host = lab.SafetyHost(topo, workdir, offloads=True)
        # Two VMs share the core with 1.5 s slices, and the guest's turn comes second: it is
        # off its core 1.5 s at a time, while data keeps coming. Its buffer is 256 KiB, less
        # than the window the guest advertises once its receive buffer has grown.
        vsnoopd = host.start_vsnoopd(k=2, slice_ms=1500, guest_fields=f",buffer-bytes={buffer_bytes}", turn=2)
        sink = lab.Sink(topo, host.vms[0], port=5001)
        host.start_captures(("snd", "up", "vm"))
        # Data keeps coming for several of the guest's turns, however fast this build is.
        stream = Stream(topo, host, 1, sink, workdir, seed=31, timeout=30)
        # Sample the guest's buffer: how long it stays full (less than one 64 KiB frame of
        # room), and whether early ACKs resume after it was full.
        full_seconds = 0.0
        early_acks_when_first_full = None
        last = time.monotonic()
        end = last + stream_seconds
        while time.monotonic() < end:
            g = vsnoopd.stats()["guests"][0]
            now = time.monotonic()
            if g["buffer"]["bytes"] > buffer_bytes - 65536:
                full_seconds += now - last
                if early_acks_when_first_full is None:
                    early_acks_when_first_full = g["counters"]["early_acks"]
            last = now
            time.sleep(0.05)
        # The guest may be off its core now: the stream ends within one turn of the guest.
        sent, got = stream.stop(timeout=10)
        time.sleep(0.3)
        stats = vsnoopd.stats()
        drops = host.stop_captures()
        code = host.stop_vsnoopd()
        sink.stop()
        t = stats["engine"]["transitions"]
        counters = stats["guests"][0]["counters"]
        r["bytes"] = sent and sent["bytes"]
        r["seconds"] = sent and round(sent["seconds"], 2)
        r["buffer_full_seconds"] = round(full_seconds, 2)
        r["dropped_no_room"] = counters["frames_dropped_no_room"]
        r["transitions"] = {k: v for k, v in t.items() if "NO_BUFFER" in k}
        r["buffer_high_water_bytes"] = counters["buffer_high_water_bytes"]
        r["early_acks_after_first_full"] = (counters["early_acks"] - early_acks_when_first_full
                                            if early_acks_when_first_full is not None else None)
        c["transfer_intact"] = stream_ok(sent, got)
        # Full for at least 0.4 s in all (sampled every 50 ms; a sanitizer build fills it
        # less often), and to the brim at least once.
        c["buffer_filled"] = full_seconds >= 0.4 and r["buffer_high_water_bytes"] > buffer_bytes - 65536
        c["flow_resumed"] = bool(r["early_acks_after_first_full"])
        c["captures_complete"] = not any(drops.values())
        figures, problems = checks.all_checks(workdir, lab.sender_address())
        r["capture_checks"] = figures
        r["capture_problems"] = problems
        c["nothing_acknowledged_was_lost"] = not problems
        c["no_internal_bug"] = stats["bridge"]["internal_bugs"] == 0 and code == 0
    lab.shutil.rmtree(workdir, ignore_errors=True)
    return r


def qemu_killed(quick):
    from vsnooplab import qemu  # noqa: E402
    from vsnooplab.transfer import send  # noqa: E402
    r = {"scenario": "qemu_killed", "checks": {}}
    c = r["checks"]
    workdir = lab.new_workdir("qemu")
    run_root = tempfile.mkdtemp(prefix="vsq-")  # short: a unix socket path has at most 107 bytes
    sock = os.path.join(run_root, "g.sock")
    qemu.build_guest()
    with lab.Topology("vssq") as topo:
        host = lab.SafetyHost(topo, workdir, guests=1, offloads=True)
        vsnoopd = host.start_vsnoopd(k=1, pcap_out=False, extra=["--guest", f"qemu:{sock}"])
        name = f"qemu:{sock}"

        def boot(gid):
            g = qemu.QemuGuest(topo, gid, "sink", f"stream:{sock}", f"{lab.vm_address(2)}/24",
                               netns=host.host.name, guest_args=("--timeout", "240"), run_root=run_root)
            lab.wait_for(lambda: vsnoopd.stats()["guests"][1]["connected"], 20, f"vsnoopd to see {gid}")
            return g

        g1 = boot("g1")
        sink = lab.Sink(topo, host.vms[0], port=5001)
        other = Stream(topo, host, 1, sink, workdir, seed=41)
        # A transfer to the qemu guest, killed in the middle.
        proc = topo.spawn(host.sender, [lab.paths.PYTHON, lab.paths.FLOWSEND, "--to", lab.vm_address(2), "--port",
                                        "5001", "--bytes", str(64 << 20), "--timeout", "30"])
        lab.wait_for(lambda: any(f["guest"] == name and f["stats"]["early_acks"] > 20
                                 for f in vsnoopd.ctl("flows")["flows"]), 60, "the qemu guest's flow accelerated")
        other_before = early_acks_of(vsnoopd, 5001)
        os.kill(g1.pid, signal.SIGKILL)
        lab.wait_for(lambda: not vsnoopd.stats()["guests"][1]["connected"], 20, "vsnoopd to see qemu go")
        stats = vsnoopd.stats()
        c["disconnect_counted"] = stats["guests"][1]["counters"]["disconnects"] == 1
        c["its_flows_forgotten"] = not [f for f in vsnoopd.ctl("flows")["flows"] if f["guest"] == name]
        c["its_buffer_emptied"] = stats["guests"][1]["buffer"]["frames"] == 0
        proc.kill()
        proc.wait()
        topo.processes.remove(proc)
        g1.stop()
        time.sleep(1)
        c["other_vm_keeps_early_acks"] = (early_acks_of(vsnoopd, 5001) or 0) > (other_before or 0)
        g2 = boot("g2")
        before = vsnoopd.stats()["guests"][1]["counters"]["early_acks"]
        sent = send(host.sender, lab.vm_address(2), 8 << 20, seed=42, timeout=300)
        got = g2.next_sink_result(timeout=300)
        c["new_qemu_transfer_intact"] = got["sha256"] == sent["sha256"] and got["bytes"] == 8 << 20
        c["new_qemu_accelerated"] = vsnoopd.stats()["guests"][1]["counters"]["early_acks"] > before
        s_other, g_other = other.stop()
        c["other_vm_transfer_intact"] = stream_ok(s_other, g_other)
        c["no_internal_bug"] = vsnoopd.stats()["bridge"]["internal_bugs"] == 0
        g2.stop()
        host.stop_vsnoopd()
        sink.stop()
    lab.shutil.rmtree(workdir, ignore_errors=True)
    lab.shutil.rmtree(run_root, ignore_errors=True)
    return r


SCENARIOS = {
    "restart_sigterm": lambda q: restart(signal.SIGTERM, q),
    "restart_sigkill": lambda q: restart(signal.SIGKILL, q),
    "vm_namespace_deleted": vm_namespace_deleted,
    "vm_off_core_for_seconds": vm_off_core_for_seconds,
    "qemu_killed": qemu_killed,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter transfers (make test)")
    ap.add_argument("--qemu", action="store_true", help="also kill and restart a qemu guest")
    ap.add_argument("--only", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("--json")
    a = ap.parse_args()
    lab.require_root()
    lab.require_binaries()
    names = a.only or [n for n in SCENARIOS if n != "qemu_killed" or a.qemu]
    results = []
    passed = failed = 0
    for i, name in enumerate(names, start=1):
        try:
            r = SCENARIOS[name](a.quick)
        except Exception as e:
            r = {"scenario": name, "checks": {"ran": False}, "error": f"{type(e).__name__}: {e}"}
        results.append(r)
        known = r.get("known_issues", {})
        for check, ok in r["checks"].items():
            issue = known.get(check)
            # A known issue's check fails while the issue is there (XFAIL). When it passes
            # (XPASS) the run still passes: whether a race such as a restart at the wrong
            # moment is hit can vary; the output says XPASS so the mark can be reviewed.
            good = ok or bool(issue)
            passed += good
            failed += not good
            status = {(True, None): "ok", (False, None): "FAILED"}.get((ok, issue)) or ("XFAIL" if not ok else "XPASS")
            print(f"{status:6} {name}.{check}" + (f" (known issue: {issue})" if issue else ""))
        if "error" in r:
            print(f"       {r['error']}")
        lab.progress(i, len(names), name)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    print(json.dumps(results))
    print(f"faults: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
