"""vSnoop's ceiling, computed for one flow from what the host observed while it ran.

vSnoop acknowledges only what is in the guest's buffer and what lies left of the right
edge the guest last advertised. While the VM waits for its turn, its edge does not move, so
per scheduling cycle vSnoop can acknowledge at most

    A_c = min(B_eff, W_c)        W_c = guest's right edge - guest's ACK at the end of turn c
                                 B_eff = payload the guest's buffer holds

and a flow of F bytes needs at least the handshake (the guest must answer the SYN itself)
and then N cycles, N the least with A_0 + ... + A_(N-1) >= F. The ceiling is the throughput
of that best case:

    ceiling = F / (t_handshake + N * T)        T = the observed mean cycle length

For long flows it tends to sum(A_c) / sum(T_c): the allowance per cycle over the cycle.
The observations come from FlowObserver samples (vsnoopd's view of the flow every few ms):
a "turn" is a burst of changes of the guest's ACK or right edge (the guest's stack runs only
on its turn), separated from the next by more than `gap_ms`.
"""
import statistics

SEQ_MOD = 1 << 32


def seq_diff(a, b):
    """a - b in sequence space (wrap-safe, signed)."""
    d = (a - b) % SEQ_MOD
    return d - SEQ_MOD if d >= SEQ_MOD // 2 else d


def flow_samples(samples, local_port):
    """The samples of the flow whose remote (sender) port is local_port, once past the SYN."""
    out = []
    suffix = f":{local_port}"
    for s in samples:
        for f in s["flows"]:
            if f["remote"].endswith(suffix) and f["state"] != "HANDSHAKE":
                out.append({"t": s["t"], "a": f["guest_ack"], "e": f["edge"], "n": f["rcv_nxt"],
                            "state": f["state"], "buf": s.get("buffer_bytes"),
                            "turns": (s.get("schedule") or {}).get("turns"),
                            "vcpu": s.get("vcpu")})
                break
    return out


def detect_turns(fs, gap_ms=12.0):
    """Groups the samples where the guest's ACK or edge moved into turns.

    Returns [{"t_start", "t_end", "a", "e", "buf"}], a/e/buf as at the end of the turn. The
    first entry is the handshake turn (the first sample past the SYN).
    """
    if not fs:
        return []
    turns = [{"t_start": fs[0]["t"], "t_end": fs[0]["t"], "a": fs[0]["a"], "e": fs[0]["e"],
              "buf": fs[0]["buf"]}]
    for prev, cur in zip(fs, fs[1:]):
        if cur["a"] == prev["a"] and cur["e"] == prev["e"]:
            continue
        last = turns[-1]
        if (cur["t"] - last["t_end"]) * 1000 <= gap_ms:
            last.update(t_end=cur["t"], a=cur["a"], e=cur["e"], buf=cur["buf"])
        else:
            turns.append({"t_start": cur["t"], "t_end": cur["t"], "a": cur["a"], "e": cur["e"],
                          "buf": cur["buf"]})
    return turns


def buffer_payload(buffer_bytes, buffer_frames, frame_bytes, header_bytes=66):
    """Payload the buffer holds when filled with frames of frame_bytes (headers excluded)."""
    frame_bytes = max(frame_bytes, header_bytes + 1)
    payload_per_frame = frame_bytes - header_bytes
    by_bytes = buffer_bytes // frame_bytes * payload_per_frame
    return min(by_bytes, buffer_frames * payload_per_frame)


def compute(samples, local_port, t_connect, t_done, flow_bytes, buffer_payload_bytes,
            gap_ms=12.0):
    """The ceiling and what it rests on, for one flow. None when no cycles were seen (a VM
    alone on its core, or too few samples)."""
    fs = flow_samples(samples, local_port)
    turns = detect_turns(fs, gap_ms)
    if len(turns) < 3:
        return None
    starts = [t["t_start"] for t in turns]
    cycles = [b - a for a, b in zip(starts[1:], starts[2:])]  # data turns only
    if not cycles:
        return None
    cycle = statistics.fmean(cycles)
    windows = [max(0, seq_diff(t["e"], t["a"])) for t in turns]
    allowances = [min(buffer_payload_bytes, w) for w in windows]
    # Least number of cycles whose allowances cover the flow (extrapolating with the last
    # observed allowance if the flow ended sooner).
    need, covered, n = flow_bytes, 0, 0
    while covered < need:
        a = allowances[n] if n < len(allowances) else allowances[-1]
        if a <= 0:
            if n >= len(allowances):
                return None
            n += 1
            continue
        covered += a
        n += 1
    handshake = max(0.0, turns[0]["t_start"] - t_connect)
    best_seconds = handshake + n * cycle
    intakes = [max(0, seq_diff(b["a"], a["a"])) for a, b in zip(turns, turns[1:])]
    data_turns = windows[:len(cycles) + 1]
    return {
        "mbps": flow_bytes * 8 / best_seconds / 1e6,
        "steady_mbps": 8 * statistics.fmean(allowances[:len(cycles)]) / cycle / 1e6,
        "cycle_ms": cycle * 1000,
        "cycles_needed": n,
        "turns_seen": len(turns),
        "handshake_ms": handshake * 1000,
        "buffer_payload": buffer_payload_bytes,
        "window_median": statistics.median(data_turns),
        "window_max": max(windows),
        "window_first": windows[0],
        "intake_median": statistics.median(intakes) if intakes else 0,
        "intake_max": max(intakes) if intakes else 0,
        "buffer_at_turn_end_median": statistics.median(
            [t["buf"] for t in turns if t["buf"] is not None] or [0]),
        "turns": [[round((t["t_start"] - t_connect) * 1000, 1), max(0, seq_diff(t["e"], t["a"])),
                   t["buf"]] for t in turns[:400]],
    }
