"""vsnoopd as an operator meets it: the decisions file (--pcap-out), the metrics endpoint
(--metrics-port), the configuration file (--config), shutdown on SIGTERM and SIGINT, and
start-up errors (a missing interface, socket paths in use, bad flags and values).
"""
import json
import os
import re
import signal
import socket
import struct
import subprocess
import time
import unittest

import netnstest
from netnstest import K3, VsnoopdTestCase, figure, sender_address, vm_address

netnstest.require_environment()

from vsnooplab import paths  # noqa: E402
from vsnooplab.capture import Capture, tcp_data_segments, tshark_fields  # noqa: E402
from vsnooplab.hosts import Vsnoopd  # noqa: E402
from vsnooplab.netns import wait_for  # noqa: E402
from vsnooplab.transfer import Sink, checked_flow  # noqa: E402

MB = 1 << 20
METRICS_PORT = 9464  # on the host namespace's own loopback: parallel tests do not collide
PCAPNG_SECTION_HEADER = 0x0A0D0D0A


def run_vsnoopd(ns, *args, timeout=10):
    """Runs vsnoopd in ns until it exits (it is expected to fail at start-up); returns
    (exit status, everything it printed). One that does not exit is killed: status None."""
    try:
        p = subprocess.run(["ip", "netns", "exec", ns.name, paths.VSNOOPD, *args],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode() + (e.stderr or b"").decode()
    return p.returncode, p.stdout + p.stderr


class UnixListener:
    """Another process listening on a unix socket path (socat), to hold a path vsnoopd
    must not take."""

    def __init__(self, topo, ns, path):
        self.topo = topo
        self.proc = topo.spawn(ns, ["socat", f"UNIX-LISTEN:{path},fork", "SYSTEM:cat"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(path), 10, f"socat to listen on {path}")
        self.path = path

    def answers(self):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(self.path)
            s.sendall(b"ping\n")
            return s.recv(16) == b"ping\n"

    def stop(self):
        self.topo.stop(self.proc)


# ---- Prometheus text exposition format 0.0.4 ---------------------------------------------

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({METRIC_NAME})(\{{(?:{LABEL})(?:,{LABEL})*\}})? (\S+)$")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_prometheus(text):
    """Parses the text format strictly; returns {(name, labels): value} and {name: type}.
    Raises AssertionError on anything a Prometheus server would reject or misread: a line
    that is neither a comment nor a sample, a sample without a TYPE before it, HELP or TYPE
    twice, a family split in two, a value that is not a number, a duplicate sample."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    samples, types, helps = {}, {}, set()
    closed, current = set(), None
    for n, line in enumerate(text.splitlines(), start=1):
        where = f"line {n}: {line!r}"
        if line.startswith("#"):
            m = re.match(rf"^# (HELP|TYPE) ({METRIC_NAME}) (.*)$", line)
            assert m, f"malformed comment, {where}"
            kind, name, rest = m.groups()
            if kind == "HELP":
                assert name not in helps, f"second HELP, {where}"
                assert rest.strip(), f"empty HELP, {where}"
                helps.add(name)
            else:
                assert name not in types, f"second TYPE, {where}"
                assert rest in TYPES, f"unknown type, {where}"
                assert not any(k[0] == name for k in samples), f"TYPE after samples, {where}"
                types[name] = rest
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample, {where}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        assert name in types, f"sample without TYPE, {where}"
        if name != current:
            assert name not in closed, f"family {name} split in two, {where}"
            if current:
                closed.add(current)
            current = name
        assert (name, labels) not in samples, f"duplicate sample, {where}"
        samples[(name, labels)] = float(value)  # raises on a value that is not a number
    assert set(types) == helps, f"HELP and TYPE differ: {set(types) ^ helps}"
    return samples, types


def http_get(ns, url):
    """(status, headers, body) of a GET from inside ns."""
    script = ("import json, sys, urllib.request, urllib.error\n"
              "try:\n"
              f"    r = urllib.request.urlopen({url!r}, timeout=5)\n"
              "except urllib.error.HTTPError as e:\n"
              "    r = e\n"
              "body = r.read().decode()\n"
              "print(json.dumps([r.status, dict(r.headers.items()), body]))\n")
    return tuple(json.loads(ns.exec(paths.PYTHON, "-c", script)))


class DecisionsFile(VsnoopdTestCase):
    def test_pcap_out(self):
        pcap = os.path.join(self.tmp, "decisions.pcapng")
        wall_start = time.time()
        h = self.host("vsnoop", K3, pcap_out=pcap)
        name = h.vsnoopd.stats()["guests"][0]["name"]
        sink = Sink(self.topo, h.vms[0])
        vm_capture = Capture(self.topo, h.vms[0], "eth0", os.path.join(self.tmp, "vm.pcap"))
        checked_flow(h.sender, sink, vm_address(1), 4 * MB)
        time.sleep(0.3)
        vm_capture.stop()
        counters = netnstest.guest_counters(h.vsnoopd)
        # The file is complete once vsnoopd has exited (it flushes on shutdown).
        self.assertEqual(h.vsnoopd.stop(), 0)
        wall_end = time.time()

        with open(pcap, "rb") as f:
            self.assertEqual(struct.unpack("<I", f.read(4))[0], PCAPNG_SECTION_HEADER)
        # Every packet, with the checksums tshark computes; tshark fails on a broken file.
        rows = tshark_fields(
            pcap, "frame", ["frame.comment", "frame.time_epoch", "ip.src", "ip.dst", "tcp.srcport",
                            "tcp.flags", "tcp.len", "tcp.ack_raw",
                            "ip.checksum.status", "tcp.checksum.status"],
            extra_args=["-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"])
        kinds = {"early-ack": 0, "window-update": 0, "suppressed": 0}
        comment = re.compile(rf"^(early-ack|window-update|suppressed) guest={re.escape(name)}$")
        last_time = 0.0
        early_ack_numbers = set()
        for (note, when, src, dst, sport, flags, length, ack, ip_ok, tcp_ok) in rows:
            m = comment.match(note)
            self.assertIsNotNone(m, f"packet comment {note!r}")
            kinds[m.group(1)] += 1
            # Every decision concerns a segment from the VM's port 5001 to the sender: an ACK
            # made on its behalf, or one of its own that was held back.
            self.assertEqual((src, dst, sport), (vm_address(1), sender_address(), "5001"))
            self.assertEqual(length, "0")
            self.assertEqual(int(flags, 16) & 0x10, 0x10, f"no ACK flag: {flags}")
            self.assertGreaterEqual(float(when), last_time, "timestamps go back")
            self.assertTrue(wall_start - 1 <= float(when) <= wall_end + 1, f"timestamp {when}")
            last_time = float(when)
            if m.group(1) != "suppressed":
                # Made by vsnoopd: both checksums verified good (tshark: 1 = good).
                self.assertEqual((ip_ok, tcp_ok), ("1", "1"), f"checksums of {note} ack {ack}")
                self.assertEqual(int(flags, 16), 0x10, f"flags of {note}: {flags}")
            if m.group(1) == "early-ack":
                early_ack_numbers.add(int(ack))
        figure(f"decisions file: {kinds}")
        self.assertEqual(kinds, {"early-ack": counters["early_acks"],
                                 "window-update": counters["window_updates"],
                                 "suppressed": counters["guest_acks_suppressed"]})
        self.assertGreater(kinds["early-ack"], 0)
        self.assertGreater(kinds["suppressed"], 0)
        # An early ACK acknowledges exactly the end of a data frame the VM received.
        self.assertTrue(vm_capture.complete)
        ends = {(seq + n) % (1 << 32) for seq, n in
                tcp_data_segments(vm_capture.path, sender_address(), vm_address(1))}
        self.assertEqual(early_ack_numbers - ends, set(),
                         "early ACKs for a byte that does not end a frame the VM received")


class Metrics(VsnoopdTestCase):
    def test_metrics_endpoint(self):
        h = self.host("vsnoop", K3, extra_args=["--metrics-port", str(METRICS_PORT)])
        sink = Sink(self.topo, h.vms[0])
        checked_flow(h.sender, sink, vm_address(1), 4 * MB)
        url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
        # Frames may still trickle in (neighbour discovery): compare a stable moment.
        for _ in range(20):
            before = h.vsnoopd.stats()
            status, headers, body = http_get(h.host, url)
            ctl_text = h.vsnoopd.ctl("metrics")["text"]
            after = h.vsnoopd.stats()
            if before == after:
                break
            time.sleep(0.2)
        else:
            self.fail("vsnoopd's counters never held still for a moment")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4")
        self.assertEqual(int(headers["Content-Length"]), len(body.encode()))
        self.assertEqual(body, ctl_text, "the endpoint and vsnoopctl metrics differ")
        samples, types = parse_prometheus(body)
        figure(f"metrics: {len(samples)} samples in {len(types)} families")
        for (name, _), value in samples.items():
            if types[name] == "counter":
                self.assertTrue(name.endswith("_total"), name)
                self.assertGreaterEqual(value, 0, name)

        engine, bridge, guest = after["engine"], after["bridge"], after["guests"][0]
        label = '{guest="' + guest["name"] + '"}'
        expected = {("vsnoop_enabled", ""): 1}
        for k, v in engine.items():
            if isinstance(v, int):
                expected[(f"vsnoop_{k}_total", "")] = v
        for k, v in engine["reasons"].items():
            expected[("vsnoop_frames_by_reason_total", f'{{reason="{k}"}}')] = v
        for k, v in engine["flows"]["by_state"].items():
            expected[("vsnoop_flows", f'{{state="{k}"}}')] = v
        for k, v in bridge.items():
            if k != "mac_addresses":
                expected[(f"vsnoop_bridge_{k}_total", "")] = v
        for k, v in guest["counters"].items():
            expected[(f"vsnoop_guest_{k}" + ("" if k == "buffer_high_water_bytes" else "_total"),
                      label)] = v
        expected[("vsnoop_guest_buffer_bytes", label)] = guest["buffer"]["bytes"]
        expected[("vsnoop_guest_connected", label)] = 1
        self.assertGreater(engine["early_acks"], 0)
        self.assertEqual({k: samples.get(k) for k in expected}, expected)
        # Every reason the engine counts is exported, zero or not.
        self.assertEqual(sum(v for (n, _), v in samples.items() if n == "vsnoop_frames_by_reason_total"),
                         sum(engine["reasons"].values()))

        status, _, _ = http_get(h.host, f"http://127.0.0.1:{METRICS_PORT}/")
        self.assertEqual(status, 404)

    def test_prometheus_parser_rejects_what_a_server_would(self):
        good = "# HELP a_total x\n# TYPE a_total counter\na_total 1\na_total{l=\"v\"} 2\n"
        parse_prometheus(good)
        for bad in ("a_total 1\n",                                      # no TYPE
                    good + "a_total 3\n",                                # duplicate sample
                    good.replace(" 2\n", " two\n"),                      # not a number
                    good + "# HELP b x\n# TYPE b gauge\nb 1\na_total{l=\"w\"} 1\n",  # split
                    good.rstrip("\n")):                                  # no final newline
            with self.assertRaises((AssertionError, ValueError), msg=bad):
                parse_prometheus(bad)


class ConfigFile(VsnoopdTestCase):
    def config_host(self):
        """A host whose vsnoopd is stopped again at once: its interfaces, without a daemon."""
        h = self.host("vsnoop", netnstest.K1)
        self.check_clean_exit(h.vsnoopd)
        return h

    def start(self, h, args):
        return self.start_vsnoopd(h.host, args)

    def test_options_from_toml(self):
        h = self.config_host()
        spec = "veth:vm1,sched=rr:vms=3:slice_ms=30:turn=1:idle_us=0"
        pcap = os.path.join(self.tmp, "from-config.pcapng")
        config = os.path.join(self.tmp, "vsnoopd.toml")
        with open(config, "w") as f:
            f.write("# vsnoopd options, as their long names\n"
                    'uplink = "up0"\n'
                    f'guest = ["{spec}"]\n'
                    "buffer-bytes = 524288\n"
                    "buffer-frames = 512\n"
                    f"metrics-port = {METRICS_PORT}\n"
                    f'pcap-out = "{pcap}"\n')
        v = self.start(h, ["--config", config])
        stats = v.stats()
        guest = stats["guests"][0]
        self.assertEqual(guest["name"], spec)
        self.assertEqual((guest["buffer"]["max_bytes"], guest["buffer"]["max_frames"]), (524288, 512))
        self.assertIn("rr:vms=3:slice_ms=30:turn=1", guest["schedule"]["config"])
        self.assertEqual(stats["vsnoop"], "on")
        sink = Sink(self.topo, h.vms[0])
        checked_flow(h.sender, sink, vm_address(1), 1 * MB)
        self.assertGreater(netnstest.guest_counters(v)["early_acks"], 0)
        status, _, body = http_get(h.host, f"http://127.0.0.1:{METRICS_PORT}/metrics")
        self.assertEqual(status, 200)
        self.assertIn("vsnoop_early_acks_total", body)
        self.assertEqual(v.stop(), 0)
        self.assertGreater(os.path.getsize(pcap), 0)

    def test_command_line_overrides_the_file(self):
        h = self.config_host()
        config = os.path.join(self.tmp, "vsnoopd.toml")
        with open(config, "w") as f:
            f.write('uplink = "up0"\nguest = ["veth:vm1"]\nbuffer-bytes = 524288\nno-vsnoop = true\n')
        v = self.start(h, ["--config", config, "--buffer-bytes", "262144"])
        stats = v.stats()
        self.assertEqual(stats["guests"][0]["buffer"]["max_bytes"], 262144)
        self.assertEqual(stats["vsnoop"], "off")

    def test_bad_files_are_refused(self):
        h = self.config_host()
        code, out = run_vsnoopd(h.host, "--config", os.path.join(self.tmp, "missing.toml"))
        self.assertNotIn(code, (0, None), out)
        self.assertIn("missing.toml", out)
        config = os.path.join(self.tmp, "bad-value.toml")
        with open(config, "w") as f:
            f.write('uplink = "up0"\nguest = ["veth:vm1"]\nbuffer-bytes = "lots"\n')
        code, out = run_vsnoopd(h.host, "--config", config)
        self.assertNotIn(code, (0, None), out)
        self.assertIn("buffer-bytes", out)

    def test_unknown_key_is_refused(self):
        # A misspelt key ("bufer-bytes") is an error, as an unknown flag on the command line
        # is; it was once ignored, and vsnoopd ran with the default buffer.
        h = self.config_host()
        config = os.path.join(self.tmp, "typo.toml")
        with open(config, "w") as f:
            f.write('uplink = "up0"\nguest = ["veth:vm1"]\nbufer-bytes = 524288\n')
        code, out = run_vsnoopd(h.host, "--config", config, "--control",
                                os.path.join(self.tmp, "typo.sock"), timeout=3)
        self.assertNotIn(code, (0, None), out)
        self.assertIn("bufer-bytes", out)


class Shutdown(VsnoopdTestCase):
    def check_signal(self, signum, mid_flow):
        qemu_socket = os.path.join(self.tmp, "qemu.sock")
        pcap = os.path.join(self.tmp, "d.pcapng")
        h = self.host("vsnoop", K3, pcap_out=pcap,
                      extra_args=["--guest", f"qemu:{qemu_socket}"])
        v = h.vsnoopd
        self.assertTrue(os.path.exists(qemu_socket))
        # A peer on the qemu socket, as a guest's qemu would be.
        peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(peer.close)
        peer.connect(qemu_socket)
        wait_for(lambda: v.stats()["guests"][1]["connected"], 5, "the qemu peer to attach")
        sink = Sink(self.topo, h.vms[0])
        sender = None
        if mid_flow:
            sender = self.topo.spawn(h.sender, [paths.PYTHON, paths.FLOWSEND, "--to", vm_address(1),
                                                "--port", "5001", "--bytes", str(64 * MB),
                                                "--timeout", "30"])
            wait_for(lambda: v.stats()["engine"]["early_acks"] > 0, 20, "the flow to start")
        else:
            checked_flow(h.sender, sink, vm_address(1), 1 * MB)
        started = time.monotonic()
        v.proc.send_signal(signum)
        code = v.proc.wait(10)
        figure(f"exit on {signal.Signals(signum).name}{' mid-flow' if mid_flow else ''} took "
               f"{(time.monotonic() - started) * 1000:.0f} ms")
        self.assertEqual(code, 0)
        self.assertFalse(os.path.exists(v.control), "control socket left behind")
        self.assertFalse(os.path.exists(qemu_socket), "qemu socket left behind")
        with open(v.log_path) as f:
            self.assertRegex(f.read(), r"shutting down: [1-9]\d* early ACKs")
        # The decisions file was flushed and closed: tshark reads it to the end.
        self.assertGreater(len(tshark_fields(pcap, "frame", ["frame.number"])), 0)
        peer.settimeout(5)
        while peer.recv(65536):  # frames flooded to every port before the end
            pass
        if sender:
            self.topo.stop(sender)

    def test_sigterm(self):
        self.check_signal(signal.SIGTERM, mid_flow=False)

    def test_sigint(self):
        self.check_signal(signal.SIGINT, mid_flow=False)

    def test_sigterm_mid_flow(self):
        self.check_signal(signal.SIGTERM, mid_flow=True)


class StartupErrors(VsnoopdTestCase):
    def setUp(self):
        super().setUp()
        self.h = self.host("vsnoop", netnstest.K1)
        self.control = os.path.join(self.tmp, "second.sock")

    def refused(self, *args, message):
        code, out = run_vsnoopd(self.h.host, "--control", self.control, *args)
        self.assertIsNotNone(code, f"vsnoopd {' '.join(args)} did not exit:\n{out}")
        self.assertNotEqual(code, 0, out)
        self.assertRegex(out, message)
        self.assertIsNone(netnstest.BAD_LOG.search(out), f"a sanitizer report:\n{out}")
        self.assertFalse(os.path.exists(self.control), "a failed start left its control socket")
        return code

    def test_missing_interfaces(self):
        self.refused("--uplink", "nosuch0", "--guest", "veth:vm1",
                     message=r"uplink nosuch0: .*interface nosuch0 does not exist")
        self.refused("--uplink", "up0", "--guest", "veth:nosuch1",
                     message=r"guest veth:nosuch1: .*interface nosuch1 does not exist")

    def test_control_socket_in_use(self):
        # The path of the running vsnoopd's control socket: a second daemon must not take it.
        first = self.h.vsnoopd
        code, out = run_vsnoopd(self.h.host, "--uplink", "up0", "--guest", "veth:vm1",
                                "--control", first.control)
        self.assertNotIn(code, (0, None), out)
        self.assertIn(f"socket path {first.control} is in use by another process", out)
        self.assertEqual(first.stats()["vsnoop"], "on", "the first daemon lost its socket")
        # And a path held by some other program.
        other = UnixListener(self.topo, self.h.host, os.path.join(self.tmp, "other.sock"))
        code, out = run_vsnoopd(self.h.host, "--uplink", "up0", "--guest", "veth:vm1",
                                "--control", other.path)
        self.assertNotIn(code, (0, None), out)
        self.assertIn("is in use by another process", out)
        self.assertTrue(other.answers(), "vsnoopd broke the other program's socket")

    def test_qemu_socket_in_use(self):
        other = UnixListener(self.topo, self.h.host, os.path.join(self.tmp, "taken.sock"))
        self.refused("--uplink", "up0", "--guest", f"qemu:{other.path}",
                     message=rf"guest qemu:{re.escape(other.path)}: .*{re.escape(other.path)} is in use")
        self.assertTrue(other.answers(), "vsnoopd broke the other program's socket")

    def test_socket_path_that_is_a_file(self):
        path = os.path.join(self.tmp, "plain-file")
        with open(path, "w") as f:
            f.write("keep me\n")
        self.refused("--uplink", "up0", "--guest", f"qemu:{path}",
                     message=rf"{re.escape(path)} exists and is not a socket")
        with open(path) as f:
            self.assertEqual(f.read(), "keep me\n")

    def test_stale_sockets_are_replaced(self):
        # Socket files nobody listens on (left by a daemon that was killed) are taken over.
        workdir = os.path.join(self.tmp, "second")
        os.mkdir(workdir)
        control = os.path.join(workdir, "vsnoopd.sock")  # where Vsnoopd puts the control socket
        qemu_socket = os.path.join(workdir, "qemu.sock")
        for path in (control, qemu_socket):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            s.close()
        v = Vsnoopd(self.topo, self.h.host, ["--uplink", "up0", "--guest", "veth:vm1",
                                            "--guest", f"qemu:{qemu_socket}"], workdir)
        self.addCleanup(self.check_clean_exit, v)

        def answers():
            try:
                return v.stats()["vsnoop"] == "on"
            except RuntimeError:  # the stale file is still there: connection refused
                return False
        wait_for(answers, 10, "the second vsnoopd to answer on the former stale path")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as peer:
            peer.connect(qemu_socket)
            wait_for(lambda: v.stats()["guests"][1]["connected"], 5, "a peer on the qemu socket")

    def test_metrics_port_in_use(self):
        holder = self.topo.spawn(self.h.host, ["socat", f"TCP-LISTEN:{METRICS_PORT},bind=127.0.0.1,fork",
                                               "SYSTEM:cat"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: f":{METRICS_PORT}" in self.h.host.exec("ss", "-ltnH"), 10, "socat to listen")
        self.refused("--uplink", "up0", "--guest", "veth:vm1", "--metrics-port", str(METRICS_PORT),
                     message=rf"cannot listen on 127\.0\.0\.1:{METRICS_PORT}")
        self.topo.stop(holder)

    def test_bad_flags_and_values(self):
        cases = [
            (["--uplink", "up0", "--guest", "veth:vm1", "--no-such-flag"], r"--no-such-flag"),
            (["--guest", "veth:vm1"], r"--uplink is required"),
            (["--uplink", "up0", "--guest", "veth:vm1,sched=rr:vms=0"], r"vms must be between 1 and 64"),
            (["--uplink", "up0", "--guest", "tap:vm1"], r"unknown kind 'tap'"),
            (["--uplink", "up0", "--guest", "veth:vm1", "--buffer-bytes", "12"], r"--buffer-bytes"),
            (["--uplink", "up0", "--guest", "veth:vm1", "--ring", "v9"], r"--ring"),
            (["--uplink", "up0", "--guest", "qemu:/tmp/x.sock,sched=rr:vms=2"], r"sched= is for"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                self.refused(*args, message=message)


class SecondDaemon(VsnoopdTestCase):
    @netnstest.known_bug("a refused second vsnoopd's probe of the qemu socket counts as a "
                         "guest disconnect in the running one")
    def test_refused_start_leaves_the_running_daemon_undisturbed(self):
        # A second vsnoopd given the running one's qemu socket is refused, as it should be,
        # but not without a trace: StreamPort::Listen probes the path by connecting to it,
        # the running daemon's StreamPort::Accept takes the probe for its guest's qemu (none
        # is attached yet), reads its end of stream and counts a disconnect, so
        # Datapath::OnGuestGone forgets that guest's flows and buffered frames. Expected:
        # disconnects stays 0 when no guest came or went.
        qemu_socket = os.path.join(self.tmp, "qemu.sock")
        h = self.host("vsnoop", netnstest.K1, extra_args=["--guest", f"qemu:{qemu_socket}"])
        code, out = run_vsnoopd(h.host, "--uplink", "up0", "--guest", f"qemu:{qemu_socket}",
                                "--control", os.path.join(self.tmp, "second.sock"))
        self.assertNotIn(code, (0, None), out)
        self.assertIn(f"socket path {qemu_socket} is in use", out)
        time.sleep(0.2)
        self.assertEqual(h.vsnoopd.stats()["guests"][1]["counters"]["disconnects"], 0)


if __name__ == "__main__":
    unittest.main()
