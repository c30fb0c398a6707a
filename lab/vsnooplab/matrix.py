"""What a lab run measures: presets expand into host groups, each a host set up once and a
list of flows run on it.

A flow is identified by its cell (mode, VM kind, VMs per core, flow size, sender congestion
control, variant) and its repetition number; the key of that pair names its line in the
raw results, so an interrupted run resumes where it stopped.

Variants change the host, not the workload: "default" (the guests' default TCP settings,
vsnoopd's 1 MiB buffer), "rmem16m" (the guest's tcp_rmem maximum raised to 16 MiB and an
8 MiB buffer), "buf<N>" (the per-VM buffer), "rx1024" (qemu: a 1024-entry virtio RX ring).
"""
from dataclasses import dataclass, field, asdict

KB = 1024
MB = 1024 * 1024
FLOW_SIZES = [64 * KB, 256 * KB, 1 * MB, 4 * MB, 16 * MB, 64 * MB]
MODES = ("bridge", "vsnoop-off", "vsnoop")

# The qemu guest's kernel (Debian 12, 6.1) defaults: emulated guests use the same, so both
# kinds of VM start from the same receive buffer.
GUEST_DEFAULT_RMEM = "4096 131072 6291456"


@dataclass(frozen=True)
class Variant:
    name: str = "default"
    buffer_bytes: int = 1 * MB
    buffer_frames: int = 1024
    rmem_max: int = 0  # 0: the guest's default (6 MiB on both kinds)
    nic_opts: str = ""  # qemu: extra virtio-net-pci properties
    io_threads: str = "shared"  # qemu: where the receiver's I/O threads run
    wake_passes: int = 0  # emulated: 0 takes the preset's calibrated value
    gso: bool = True  # emulated: 64 KB GSO frames end to end (False: MTU frames only)
    vsnoopd_args: tuple = ()  # more vsnoopd flags


def buffer_variant(nbytes, rmem_max=0):
    frames = max(1024, nbytes // 1024)  # never frame-bound before byte-bound
    suffix = f"-rmem{rmem_max // MB}m" if rmem_max else ""
    return Variant(name=f"buf{nbytes // KB}k{suffix}", buffer_bytes=nbytes, buffer_frames=frames,
                   rmem_max=rmem_max)


DEFAULT = Variant()
RMEM16M = Variant(name="rmem16m", buffer_bytes=8 * MB, buffer_frames=8192, rmem_max=16 * MB)


@dataclass
class Preset:
    name: str
    vm_kind: str  # "emulated" or "qemu"
    ks: list
    sizes: list
    runs: int
    ccs: list = field(default_factory=lambda: ["cubic"])
    modes: tuple = MODES
    variants: list = field(default_factory=lambda: [DEFAULT])
    slice_ms: int = 30
    neighbours: str = "burn"
    wake_passes: int = 2  # emulated: calibrated against qemu (docs/emulation.md)
    idle_us: int = 0
    summary_variant: str = "default"  # the variant summary.csv reports
    description: str = ""


PRESETS = {
    "demo": Preset(
        "demo", "emulated", ks=[1, 3], sizes=[1 * MB, 16 * MB], runs=3,
        description="quick run: emulated VMs, k = 1 and 3, 1 MB and 16 MB flows, 3 runs"),
    "full": Preset(
        "full", "emulated", ks=[1, 2, 3, 4], sizes=FLOW_SIZES, runs=5, ccs=["cubic", "reno"],
        variants=[DEFAULT, RMEM16M],
        description="emulated VMs: every flow size, k = 1..4, cubic and reno, default and "
                    "large guest receive buffers, 5 runs per cell"),
    "qemu": Preset(
        "qemu", "qemu", ks=[1, 2, 3, 4], sizes=FLOW_SIZES, runs=5,
        description="qemu VMs (TCG), SCHED_RR 30 ms on one core: every flow size, k = 1..4, "
                    "5 runs per cell"),
    "qemu-quick": Preset(
        "qemu-quick", "qemu", ks=[3], sizes=[1 * MB, 16 * MB], runs=2,
        description="qemu VMs, k = 3, 1 MB and 16 MB, 2 runs (a smoke run)"),
    "qemu-variants": Preset(
        "qemu-variants", "qemu", ks=[2, 3], sizes=[1 * MB, 16 * MB], runs=5,
        modes=("vsnoop-off", "vsnoop"),
        variants=[Variant(name="rx1024", nic_opts="rx_queue_size=1024"),
                  Variant(name="rmem16m", buffer_bytes=8 * MB, buffer_frames=8192,
                          rmem_max=16 * MB),
                  Variant(name="io-host", io_threads="host")],
        description="qemu VMs, k = 2 and 3: a 1024-entry RX ring, a large receive buffer, "
                    "and the I/O threads on the host core"),
    "buffer": Preset(
        "buffer", "emulated", ks=[3], sizes=[16 * MB], runs=5, modes=("vsnoop-off", "vsnoop"),
        variants=[buffer_variant(b) for b in (256 * KB, 512 * KB, 1 * MB, 2 * MB, 4 * MB,
                                              8 * MB, 16 * MB)] +
                 [buffer_variant(b, 16 * MB) for b in (256 * KB, 1 * MB, 4 * MB, 8 * MB,
                                                       16 * MB)],
        summary_variant="buf1024k",
        description="emulated VMs, k = 3, 16 MB flows: throughput against the per-VM buffer, "
                    "default and 16 MiB guest tcp_rmem"),
    "calibrate": Preset(
        "calibrate", "emulated", ks=[2, 3, 4], sizes=[4 * MB, 16 * MB], runs=5,
        modes=("vsnoop-off",),
        variants=[Variant(name="passes1", wake_passes=1), Variant(name="passes2", wake_passes=2),
                  Variant(name="passes3", wake_passes=3)],
        summary_variant="passes2",
        description="emulated VMs with vSnoop off, k = 2..4, one to three wake passes: "
                    "the emulation against the qemu measurements"),
    "k1": Preset(
        "k1", "emulated", ks=[1], sizes=[1 * MB, 16 * MB, 64 * MB], runs=5,
        modes=("vsnoop-off", "vsnoop"),
        variants=[DEFAULT, Variant(name="mtu", gso=False),
                  Variant(name="no-baw", vsnoopd_args=("--no-buffer-aware-window",))],
        description="emulated VM alone on its core: what vSnoop costs, with GSO and with "
                    "MTU frames"),
    "calibrate-qemu": Preset(
        "calibrate-qemu", "qemu", ks=[2, 3, 4], sizes=[4 * MB, 16 * MB], runs=5,
        modes=("bridge", "vsnoop-off"),
        description="qemu VMs, vSnoop off and the bridge, k = 2..4: the reference for the "
                    "emulation's calibration"),
}


def describe_variant(name):
    """One line on a variant's host settings, for tables."""
    for preset in PRESETS.values():
        for v in preset.variants:
            if v.name == name:
                rmem = f"guest tcp_rmem max {v.rmem_max // MB} MiB" if v.rmem_max else \
                    "guest tcp_rmem max 6 MiB (default)"
                buf = (f"{v.buffer_bytes // MB} MiB" if v.buffer_bytes >= MB
                       else f"{v.buffer_bytes // KB} KiB")
                extra = [x for x in (v.nic_opts, "" if v.gso else "MTU frames",
                                     " ".join(v.vsnoopd_args)) if x]
                return ", ".join([f"per-VM buffer {buf}", rmem] + extra)
    return name


@dataclass(frozen=True)
class Flow:
    mode: str
    vm_kind: str
    k: int
    flow_bytes: int
    cc: str
    variant: str
    rep: int

    @property
    def cell(self):
        return (self.mode, self.vm_kind, self.k, self.flow_bytes, self.cc, self.variant)

    @property
    def key(self):
        return (f"{self.vm_kind}|{self.variant}|k{self.k}|{self.mode}|{self.flow_bytes}|"
                f"{self.cc}|{self.rep}")

    def as_dict(self):
        return asdict(self)


@dataclass
class Group:
    """One host set up once: the receiving VM and its k-1 neighbours, attached to vsnoopd
    (flows of modes vsnoop and vsnoop-off, switched at run time) or to the Linux bridge."""
    vm_kind: str
    k: int
    attachment: str  # "vsnoopd" or "bridge"
    variant: Variant
    flows: list

    @property
    def label(self):
        return f"{self.vm_kind} k={self.k} {self.attachment} {self.variant.name}"


def expand(preset, ks=None, sizes=None, runs=None, ccs=None, modes=None, variants=None):
    """The preset's host groups, in the order they run. Within a group, flows interleave the
    modes and sizes per repetition, so slow drift of the machine touches all cells alike."""
    ks = ks or preset.ks
    sizes = sizes or preset.sizes
    runs = runs or preset.runs
    ccs = ccs or preset.ccs
    modes = modes or preset.modes
    chosen = [v for v in preset.variants if variants is None or v.name in variants]
    unknown = set(variants or ()) - {v.name for v in preset.variants}
    if unknown:
        raise ValueError(f"preset {preset.name} has no variant {', '.join(sorted(unknown))} "
                         f"(it has {', '.join(v.name for v in preset.variants)})")
    groups = []
    for variant in chosen:
        for k in ks:
            for attachment, group_modes in (("vsnoopd", [m for m in modes if m != "bridge"]),
                                            ("bridge", [m for m in modes if m == "bridge"])):
                if not group_modes:
                    continue
                # The Linux bridge cannot emulate scheduling: for emulated VMs it is the
                # unconsolidated reference, measured once (k = 1).
                if attachment == "bridge" and preset.vm_kind == "emulated" and k != min(ks):
                    continue
                group_k = 1 if attachment == "bridge" and preset.vm_kind == "emulated" else k
                flows = [Flow(m, preset.vm_kind, group_k, size, cc, variant.name, rep)
                         for rep in range(runs) for size in sizes for cc in ccs
                         for m in group_modes]
                groups.append(Group(preset.vm_kind, group_k, attachment, variant, flows))
    return groups
