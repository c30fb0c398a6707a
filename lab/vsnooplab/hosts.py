"""A host with VMs, built from namespaces:

    [sender ns] eth0 ---veth--- up0 [host ns: vsnoopd, or a Linux bridge] vmN ---veth--- eth0 [vmN ns]

The sender stands for a machine outside the host; the host namespace plays the hypervisor
host's driver domain; each VM namespace is a guest whose TCP stack is the real Linux one.
In the vsnoop modes, vsnoopd emulates the VMs' CPU scheduling (k VMs per core, round-robin
slices); the Linux bridge cannot, so the "bridge" mode is the unconsolidated reference.
"""
import json
import os
import shutil
import subprocess
import tempfile

from . import paths
from .netns import Topology, run, wait_for
from .observe import control_request

MODES = ("vsnoop", "vsnoop-off", "bridge")


def vm_address(i, ipv6=False):
    return f"fd77::{10 + i}" if ipv6 else f"10.77.0.{10 + i}"


def sender_address(ipv6=False):
    return "fd77::1" if ipv6 else "10.77.0.1"


class Vsnoopd:
    """A vsnoopd process in a namespace, and its control socket."""

    def __init__(self, topo, ns, args, workdir, cpu=None):
        self.control = os.path.join(workdir, "vsnoopd.sock")
        self.log_path = os.path.join(workdir, "vsnoopd.log")
        self.log = open(self.log_path, "w")
        self.topo = topo
        self.proc = topo.spawn(ns, [paths.VSNOOPD, "--control", self.control, *args],
                               stdout=self.log, stderr=subprocess.STDOUT, cpu=cpu)
        wait_for(lambda: self._alive_and_listening(), 10, "vsnoopd to start")

    def _alive_and_listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"vsnoopd exited ({self.proc.returncode}):\n{open(self.log_path).read()}")
        return os.path.exists(self.control)

    def ctl(self, *args):
        out = run([paths.VSNOOPCTL, "--control", self.control, "--json", *args])
        return json.loads(out)

    def request(self, **request):
        """One control request, spoken directly (no vsnoopctl process)."""
        reply = control_request(self.control, request)
        if "error" in reply:
            raise RuntimeError(f"vsnoopd: {reply['error']}")
        return reply

    def set_vsnoop(self, on):
        """Switches acceleration for every guest at run time (the engine keeps observing)."""
        self.request(cmd="set", vsnoop="on" if on else "off")

    def stats(self):
        return self.ctl("stats")

    def flows(self):
        return self.ctl("flows")["flows"]

    def stop(self):
        self.topo.stop(self.proc)
        self.log.close()
        return self.proc.returncode


class EmulatedHost:
    def __init__(self, topo, mode="vsnoop", vms=1, slice_ms=30, neighbours="burn", idle_us=None, guests=1,
                 buffer_bytes=None, buffer_frames=None, ipv6=False, offloads=True,
                 guest_sysctls=None, sender_sysctls=None, extra_args=(), pcap_out=None,
                 vsnoopd_cpu=0, sched_extra=""):
        assert mode in MODES, mode
        self.topo = topo
        self.mode = mode
        self.ipv6 = ipv6
        self.workdir = tempfile.mkdtemp(prefix="vsnoop-lab-")
        self.sender = topo.netns("snd")
        self.host = topo.netns("host")
        self.vms = [topo.netns(f"vm{i}") for i in range(1, guests + 1)]
        topo.veth(self.sender, "eth0", self.host, "up0", offloads=offloads)
        for i, vm in enumerate(self.vms, start=1):
            topo.veth(vm, "eth0", self.host, f"vm{i}", offloads=offloads)
        self._address(self.sender, sender_address(ipv6))
        for i, vm in enumerate(self.vms, start=1):
            self._address(vm, vm_address(i, ipv6))
        for ns, sysctls in ((self.sender, sender_sysctls), *((vm, guest_sysctls) for vm in self.vms)):
            for k, v in (sysctls or {}).items():
                ns.sysctl(k, v)
        self.vsnoopd = None
        self.guest_names = []  # vsnoopd names each guest by its spec as written
        if mode == "bridge":
            self.host.ip("link", "add", "br0", "type", "bridge")
            for port in ["up0"] + [f"vm{i}" for i in range(1, guests + 1)]:
                self.host.ip("link", "set", port, "master", "br0")
            self.host.ip("link", "set", "br0", "up")
        else:
            args = ["--uplink", "up0"]
            for i in range(1, guests + 1):
                spec = f"veth:vm{i}"
                if vms > 1:
                    spec += f",sched=rr:vms={vms}:slice_ms={slice_ms}:turn=1:neighbours={neighbours}"
                    if idle_us is not None:
                        spec += f":idle_us={idle_us}"
                    if sched_extra:
                        spec += f":{sched_extra}"
                args += ["--guest", spec]
                self.guest_names.append(spec)
            if buffer_bytes:
                args += ["--buffer-bytes", str(buffer_bytes)]
            if buffer_frames:
                args += ["--buffer-frames", str(buffer_frames)]
            if mode == "vsnoop-off":
                args.append("--no-vsnoop")
            if pcap_out:
                args += ["--pcap-out", pcap_out]
            self.vsnoopd = Vsnoopd(topo, self.host, args + list(extra_args), self.workdir,
                                   cpu=vsnoopd_cpu)

    def _address(self, ns, addr):
        if self.ipv6:
            ns.ip("addr", "add", f"{addr}/64", "dev", "eth0", "nodad")
        else:
            ns.ip("addr", "add", f"{addr}/24", "dev", "eth0")

    def close(self):
        if self.vsnoopd:
            self.vsnoopd.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
