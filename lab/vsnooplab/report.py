"""From raw.jsonl to summary.csv, cells.csv, the printed table and the plots.

summary.csv has exactly the columns mode,vm_kind,vms_per_core,flow_bytes,runs,median_mbps,
p10_mbps,p90_mbps, for the run's main configuration (cubic sender, the preset's summary
variant). cells.csv has every cell of every variant and sender, with the RTT, the ceiling
and the ratios.
"""
import csv
import os
import statistics
from collections import defaultdict

from . import matrix
from .runner import latest_by_key, read_records, size_label

SUMMARY_COLUMNS = ["mode", "vm_kind", "vms_per_core", "flow_bytes", "runs", "median_mbps",
                   "p10_mbps", "p90_mbps"]
CELL_COLUMNS = ["vm_kind", "variant", "cc", "mode", "vms_per_core", "flow_bytes", "runs",
                "failed", "median_mbps", "p10_mbps", "p90_mbps", "rtt_ms", "min_rtt_ms",
                "retransmits", "ceiling_mbps", "vs_ceiling", "vs_off", "vs_bridge",
                "window_kb", "intake_kb", "buffer_payload_kb", "ceiling_bound", "cycle_ms",
                "early_acks", "dropped_no_room",
                "foreign_cpu_max"]


def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    v = sorted(values)
    if not v:
        return None
    pos = (len(v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def median(values):
    values = [x for x in values if x is not None]
    return statistics.median(values) if values else None


class Cell:
    def __init__(self, key):
        (self.mode, self.vm_kind, self.k, self.flow_bytes, self.cc, self.variant) = key
        self.ok = []
        self.failed = []

    def stat(self, name):
        return median([r.get(name) for r in self.ok])

    def ceiling_stat(self, name):
        return median([r["ceiling"].get(name) for r in self.ok if r.get("ceiling")])

    def vsnoopd_stat(self, name):
        return median([(r.get("vsnoopd") or {}).get(name) for r in self.ok if r.get("vsnoopd")])

    def ceiling_bound(self):
        """What bounds the ceiling in most cycles: the guest's buffer on the host ("buffer")
        or the guest's advertised window ("window")."""
        votes = []
        for r in self.ok:
            c = r.get("ceiling")
            if c and c.get("window_median") is not None:
                votes.append("buffer" if c["buffer_payload"] < c["window_median"] else "window")
        if not votes:
            return None
        return max(set(votes), key=votes.count)

    @property
    def mbps(self):
        return [r["mbps"] for r in self.ok]

    def row(self):
        m = self.mbps
        return {
            "vm_kind": self.vm_kind, "variant": self.variant, "cc": self.cc, "mode": self.mode,
            "vms_per_core": self.k, "flow_bytes": self.flow_bytes, "runs": len(self.ok),
            "failed": len(self.failed), "median_mbps": median(m),
            "p10_mbps": percentile(m, 0.1), "p90_mbps": percentile(m, 0.9),
            "rtt_ms": self.stat("rtt_ms_median"), "min_rtt_ms": self.stat("min_rtt_ms"),
            "retransmits": self.stat("retransmits"),
            "ceiling_mbps": self.ceiling_stat("mbps"),
            "window_kb": kb(self.ceiling_stat("window_median")),
            "buffer_payload_kb": kb(self.ceiling_stat("buffer_payload")),
            "ceiling_bound": self.ceiling_bound(),
            "intake_kb": kb(self.ceiling_stat("intake_median")),
            "cycle_ms": self.ceiling_stat("cycle_ms"),
            "early_acks": self.vsnoopd_stat("early_acks"),
            "dropped_no_room": self.vsnoopd_stat("frames_dropped_no_room"),
            "foreign_cpu_max": max([r.get("foreign_cpu", 0) for r in self.ok + self.failed] or [0]),
        }


def kb(v):
    return None if v is None else v / 1024


def load_cells(out_dir):
    records = latest_by_key(read_records(os.path.join(out_dir, "raw.jsonl"))).values()
    cells = {}
    for r in records:
        key = (r["mode"], r["vm_kind"], r["k"], r["flow_bytes"], r["cc"], r["variant"])
        cell = cells.setdefault(key, Cell(key))
        (cell.ok if r.get("ok") else cell.failed).append(r)
    return cells


def rows(cells):
    out = []
    by_key = {c: cell for c, cell in cells.items()}
    for key, cell in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][5], kv[0][4], kv[0][2],
                                                          kv[0][3], matrix.MODES.index(kv[0][0]))):
        row = cell.row()
        off = by_key.get(("vsnoop-off",) + key[1:])
        bridge = by_key.get(("bridge",) + key[1:])
        if bridge is None and cell.vm_kind == "emulated":
            bridge = by_key.get(("bridge", key[1], 1) + key[3:])
        med = row["median_mbps"]
        if med is not None and off is not None and off.mbps and cell.mode == "vsnoop":
            row["vs_off"] = med / median(off.mbps)
        if med is not None and bridge is not None and bridge.mbps and cell.mode != "bridge":
            row["vs_bridge"] = med / median(bridge.mbps)
        if med is not None and row["ceiling_mbps"]:
            row["vs_ceiling"] = med / row["ceiling_mbps"]
        out.append(row)
    return out


def fmt(v, digits=1):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e6 else f"{v:.3g}"
    return str(v)


def write_csvs(out_dir, preset_summary_variant="default"):
    cells = load_cells(out_dir)
    all_rows = rows(cells)
    with open(os.path.join(out_dir, "cells.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CELL_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in all_rows:
            w.writerow({k: fmt(r.get(k), 3) for k in CELL_COLUMNS})
    with open(os.path.join(out_dir, "summary.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in all_rows:
            if r["cc"] == "cubic" and r["variant"] == preset_summary_variant and r["runs"] > 0:
                w.writerow({k: fmt(r.get(k), 3) for k in SUMMARY_COLUMNS})
    return all_rows


def table(all_rows, variant=None, cc="cubic"):
    """The side-by-side table: one line per (VMs per core, flow size)."""
    sel = [r for r in all_rows if r["cc"] == cc and (variant is None or r["variant"] == variant)]
    by = defaultdict(dict)
    kinds = set()
    for r in sel:
        by[(r["vm_kind"], r["variant"], r["vms_per_core"], r["flow_bytes"])][r["mode"]] = r
        kinds.add(r["vm_kind"])
    lines = []
    head = (f"{'VMs':>3} {'flow':>6} | {'bridge':>8} {'off':>8} {'vsnoop':>8} | {'vsn/off':>7} "
            f"{'ceiling':>8} {'vsn/ceil':>8} {'bound':>6} | {'RTT off':>8} {'RTT vsn':>8} | runs")
    current = None
    for (kind, var, k, size), modes in sorted(by.items()):
        if (kind, var) != current:
            current = (kind, var)
            lines.append("")
            lines.append(f"{kind} VMs, variant {var} ({matrix.describe_variant(var)}), {cc} "
                         f"sender: median Mbit/s; RTT: the sender's median smoothed RTT, ms")
            lines.append("  ceiling: vSnoop's best case from the observed cycles, guest windows and "
                         "buffer (min(buffer, window) per cycle); bound: which of the two binds; "
                         "'-': the VM is never descheduled, no cycle")
            if kind == "emulated":
                lines.append("  (bridge: the Linux bridge cannot emulate scheduling; its column "
                             "is the unconsolidated reference, k = 1)")
            lines.append(head)
            lines.append("-" * len(head))
        off, vs, br = modes.get("vsnoop-off"), modes.get("vsnoop"), modes.get("bridge")
        if br is None and kind == "emulated":
            br = by.get((kind, var, 1, size), {}).get("bridge")
        ratio = vs.get("vs_off") if vs else None
        ceil = vs.get("ceiling_mbps") if vs else None
        vs_ceil = vs.get("vs_ceiling") if vs else None
        bound = (vs.get("ceiling_bound") or "") if vs else ""
        no_cycle = k == 1 and vs is not None
        runs = "/".join(str(m["runs"]) + (f"(+{m['failed']} failed)" if m["failed"] else "")
                        for m in (br, off, vs) if m)
        lines.append(
            f"{k:>3} {size_label(size):>6} | {fmt(br and br['median_mbps']):>8} "
            f"{fmt(off and off['median_mbps']):>8} {fmt(vs and vs['median_mbps']):>8} | "
            f"{(fmt(ratio, 2) + 'x') if ratio else '':>7} {'-' if no_cycle else fmt(ceil):>8} "
            f"{(fmt(100 * vs_ceil, 0) + '%') if vs_ceil else '':>8} {bound:>6} | "
            f"{fmt(off and off['rtt_ms']):>8} {fmt(vs and vs['rtt_ms'], 2):>8} | {runs}")
    return "\n".join(lines)


def markdown(all_rows, variant, cc="cubic", vm_kind="emulated"):
    """The side-by-side table as Markdown (for docs/results.md)."""
    sel = [r for r in all_rows if r["cc"] == cc and r["variant"] == variant
           and r["vm_kind"] == vm_kind]
    by = defaultdict(dict)
    for r in sel:
        by[(r["vms_per_core"], r["flow_bytes"])][r["mode"]] = r
    out = ["| VMs | flow | bridge | vSnoop off | vSnoop | vSnoop/off | ceiling | vSnoop/ceiling "
           "| bound | RTT off (ms) | RTT vSnoop (ms) | runs |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (k, size), modes in sorted(by.items()):
        off, vs, br = modes.get("vsnoop-off"), modes.get("vsnoop"), modes.get("bridge")
        if br is None and vm_kind == "emulated":
            br = by.get((1, size), {}).get("bridge")

        def cell(m, key="median_mbps", digits=1):
            if not m or m.get(key) is None:
                return ""
            return f"{m[key]:.{digits}f}" + (f" ({m['p10_mbps']:.1f}-{m['p90_mbps']:.1f})"
                                             if key == "median_mbps" and m["runs"] > 2 else "")
        ratio = vs.get("vs_off") if vs else None
        ceil = vs.get("ceiling_mbps") if vs else None
        vs_ceil = vs.get("vs_ceiling") if vs else None
        runs = "/".join(str(m["runs"]) + (f"+{m['failed']}F" if m["failed"] else "")
                        for m in (br, off, vs) if m)
        out.append(
            f"| {k} | {size_label(size)} | {cell(br)} | {cell(off)} | {cell(vs)} | "
            f"{f'{ratio:.2f}x' if ratio else ''} | "
            f"{'-' if k == 1 else (f'{ceil:.1f}' if ceil else '')} | "
            f"{f'{100 * vs_ceil:.0f}%' if vs_ceil else ''} | "
            f"{(vs.get('ceiling_bound') or '') if vs else ''} | "
            f"{cell(off, 'rtt_ms', 1)} | {cell(vs, 'rtt_ms', 2)} | {runs} |")
    return "\n".join(out)


def buffer_markdown(all_rows, cc="cubic"):
    """The buffer sweep (variants buf<N>k[-rmem<M>m]) as Markdown: one line per buffer."""
    by = defaultdict(dict)
    for r in all_rows:
        if r["variant"].startswith("buf") and r["cc"] == cc:
            by[(r["vm_kind"], r["vms_per_core"], r["flow_bytes"], r["variant"])][r["mode"]] = r

    def order(key):
        var = key[3]
        rmem = var.split("-rmem")[1] if "-rmem" in var else ""
        return (key[0], key[1], key[2], rmem, int(var[3:].split("k")[0]))
    out = ["| VMs | flow | per-VM buffer | guest tcp_rmem max | vSnoop off | vSnoop | vSnoop/off "
           "| ceiling | vSnoop/ceiling | bound | guest window (KB, median) | RTT vSnoop (ms) "
           "| runs |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(by, key=order):
        kind, k, size, var = key
        modes = by[key]
        off, vs = modes.get("vsnoop-off"), modes.get("vsnoop")
        kib = int(var[3:].split("k")[0])
        rmem = (var.split("-rmem")[1].rstrip("m") + " MiB") if "-rmem" in var else \
            "6 MiB (default)"
        buf = f"{kib // 1024} MiB" if kib >= 1024 else f"{kib} KiB"

        def f(m, name, digits=1):
            return f"{m[name]:.{digits}f}" if m and m.get(name) is not None else ""
        vs_ceil = f"{100 * vs['vs_ceiling']:.0f}%" if vs and vs.get("vs_ceiling") else ""
        out.append(
            f"| {k} | {size_label(size)} | {buf} | {rmem} | {f(off, 'median_mbps')} | "
            f"{f(vs, 'median_mbps')} | {f(vs, 'vs_off', 2)}{'x' if vs and vs.get('vs_off') else ''} | "
            f"{f(vs, 'ceiling_mbps')} | "
            f"{vs_ceil} | "
            f"{(vs.get('ceiling_bound') or '') if vs else ''} | {f(vs, 'window_kb', 0)} | "
            f"{f(vs, 'rtt_ms', 2)} | "
            f"{'/'.join(str(m['runs']) for m in (off, vs) if m)} |")
    return "\n".join(out)


# ---- Plots -------------------------------------------------------------------------------

COLOURS = {"bridge": "#7f7f7f", "vsnoop-off": "#d62728", "vsnoop": "#1f77b4"}
LABELS = {"bridge": "Linux bridge", "vsnoop-off": "vsnoopd, vSnoop off", "vsnoop": "vSnoop"}


def plots(out_dir, all_rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    groups = defaultdict(list)
    for r in all_rows:
        if r["runs"]:
            groups[(r["vm_kind"], r["variant"], r["cc"])].append(r)
    for (kind, var, cc), rs in sorted(groups.items()):
        ks = sorted({r["vms_per_core"] for r in rs})
        sizes = sorted({r["flow_bytes"] for r in rs})
        tag = f"{kind}-{var}-{cc}"
        # Throughput against flow size, one panel per k.
        if len(sizes) > 1:
            fig, axes = plt.subplots(1, len(ks), figsize=(4.2 * len(ks), 3.8), sharey=True,
                                     squeeze=False)
            for ax, k in zip(axes[0], ks):
                for mode in matrix.MODES:
                    pts = [r for r in rs if r["mode"] == mode and (
                        r["vms_per_core"] == k or (mode == "bridge" and kind == "emulated"))]
                    pts = sorted(pts, key=lambda r: r["flow_bytes"])
                    if not pts:
                        continue
                    x = [r["flow_bytes"] / matrix.MB for r in pts]
                    y = [r["median_mbps"] for r in pts]
                    err = [[r["median_mbps"] - r["p10_mbps"] for r in pts],
                           [r["p90_mbps"] - r["median_mbps"] for r in pts]]
                    label = LABELS[mode]
                    if mode == "bridge" and kind == "emulated":
                        label += " (1 VM, not consolidated)"
                    ax.errorbar(x, y, yerr=err, marker="o", ms=4, capsize=2,
                                color=COLOURS[mode], label=label)
                    if mode == "vsnoop":
                        c = [(r["flow_bytes"] / matrix.MB, r["ceiling_mbps"]) for r in pts
                             if r.get("ceiling_mbps")]
                        if c:
                            ax.plot(*zip(*c), ls="--", color=COLOURS[mode], alpha=0.6,
                                    label="vSnoop's ceiling")
                ax.set_xscale("log", base=2)
                ax.set_xticks([sz / matrix.MB for sz in sizes])
                ax.set_xticklabels([size_label(sz) for sz in sizes], fontsize=7)
                ax.minorticks_off()
                ax.set_yscale("log")
                ax.set_title(f"{k} VM{'s' if k > 1 else ''} per core")
                ax.set_xlabel("flow size (MB)")
                ax.grid(True, which="both", alpha=0.3)
            axes[0][0].set_ylabel("throughput (Mbit/s)")
            axes[0][-1].legend(fontsize=7)
            fig.suptitle(f"{kind} VMs, {var}, {cc} sender: median, p10-p90")
            fig.tight_layout()
            path = os.path.join(out_dir, f"throughput-vs-size-{tag}.png")
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
        # Throughput and RTT against VMs per core, for the 1 MB and 16 MB flows.
        if len(ks) > 1:
            fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
            for size, style in ((16 * matrix.MB, "-"), (1 * matrix.MB, ":")):
                for mode in matrix.MODES:
                    pts = sorted([r for r in rs if r["mode"] == mode and r["flow_bytes"] == size],
                                 key=lambda r: r["vms_per_core"])
                    if not pts:
                        continue
                    x = [r["vms_per_core"] for r in pts]
                    axes[0].plot(x, [r["median_mbps"] for r in pts], style, marker="o",
                                 color=COLOURS[mode], label=f"{LABELS[mode]}, {size_label(size)}")
                    rt = [(r["vms_per_core"], r["rtt_ms"]) for r in pts if r.get("rtt_ms")]
                    if rt:
                        axes[1].plot(*zip(*rt), style, marker="o", color=COLOURS[mode],
                                     label=f"{LABELS[mode]}, {size_label(size)}")
            for ax, ylabel in zip(axes, ("throughput (Mbit/s)", "sender's RTT (ms, median)")):
                ax.set_yscale("log")
                ax.set_xlabel("VMs per core")
                ax.set_ylabel(ylabel)
                ax.set_xticks(ks)
                ax.grid(True, which="both", alpha=0.3)
            axes[0].legend(fontsize=7)
            fig.suptitle(f"{kind} VMs, {var}, {cc} sender")
            fig.tight_layout()
            path = os.path.join(out_dir, f"throughput-vs-vms-{tag}.png")
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    # Throughput against the per-VM buffer (variants named buf<N>k[-rmem..]).
    buf = defaultdict(list)
    for r in all_rows:
        if r["variant"].startswith("buf") and r["runs"]:
            family = r["variant"].split("-", 1)[1] if "-" in r["variant"] else "default rmem"
            buf[(r["vm_kind"], r["cc"], r["vms_per_core"], r["flow_bytes"], family)].append(r)
    if buf:
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for (kind, cc, k, size, family), rs in sorted(buf.items()):
            style = "-" if family == "default rmem" else "--"
            for mode in ("vsnoop-off", "vsnoop"):
                pts = sorted([(int(r["variant"][3:].split("k")[0]) / 1024, r["median_mbps"])
                              for r in rs if r["mode"] == mode])
                if pts:
                    ax.plot(*zip(*pts), style, marker="o", color=COLOURS[mode],
                            label=f"{LABELS[mode]} ({family})")
            c = sorted([(int(r["variant"][3:].split("k")[0]) / 1024, r["ceiling_mbps"])
                        for r in rs if r["mode"] == "vsnoop" and r.get("ceiling_mbps")])
            if c:
                ax.plot(*zip(*c), style, color="#2ca02c", alpha=0.7, label=f"ceiling ({family})")
            ax.set_title(f"{kind} VMs, k = {k}, {size_label(size)} flows, {cc}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("per-VM buffer (MiB)")
        ax.set_ylabel("throughput (Mbit/s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(out_dir, "throughput-vs-buffer.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
