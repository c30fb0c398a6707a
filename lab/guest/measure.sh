#!/usr/bin/env bash
# Measurements of the vSnoop lab guest on the Linux-bridge lab (lib.sh: vsg_lab_up), each
# printing one summary line. Every namespace, tap and qemu process is created here, with a
# unique prefix, and removed on exit, also after a failure.
#
#   measure.sh bridge                 boot an iperf3 guest on a tap: boot time, iperf3 Gbit/s;
#                                     boot a sink guest: send SIZE_MB of random data, check SHA256
#   measure.sh stream RELAY           the same iperf3 run through the qemu stream socket: RELAY is
#                                     a program run as `RELAY tap:IF stream:PATH` in the host
#                                     namespace (a userspace L2 relay between a tap on the bridge
#                                     and the stream socket, the place vsnoopd takes)
#   measure.sh consolidate K SCHED    K guests pinned to one CPU: guest 1 runs iperf3 -s, the
#                                     others burn CPU; SCHED is cfs or rrMS (SCHED_RR, quantum MS
#                                     ms). Ping RTT from the sender, then iperf3.
#
# Environment: T (iperf3 seconds, default 5), CC (sender congestion control, default cubic),
# SIZE_MB (default 16), GUEST_CPU (default 1: guests), SENDER_CPU (default 0: sender, relay).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T=${T:-5}
CC=${CC:-cubic}
SIZE_MB=${SIZE_MB:-16}
GUEST_CPU=${GUEST_CPU:-1}
SENDER_CPU=${SENDER_CPU:-0}
prefix="vsg-m$$"
# A private run directory: removed with everything else on exit.
VSG_RUN_ROOT="/tmp/$prefix"
guests=()
relay_pid=""
scratch=""

cleanup() {
  set +e
  local id
  for id in "${guests[@]}"; do vsg_stop "$id"; done
  if [[ -n $relay_pid ]]; then
    kill "$relay_pid" 2>/dev/null || true
    wait "$relay_pid" 2>/dev/null || true
  fi
  vsg_rr_quantum_restore
  vsg_lab_down "$prefix"
  [[ -z $scratch ]] || rm -rf "$scratch"
  rm -rf "$VSG_RUN_ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sender() { ip netns exec "$prefix-s" taskset -c "$SENDER_CPU" "$@"; }

# start_guest N ROLE [start options...]: guest gN at 10.77.0.(10+N) on tap tapN of the bridge.
start_guest() {
  local n=$1 role=$2
  shift 2
  guests+=("g$n")
  vsg_start --id "g$n" --role "$role" --netns "$prefix-h" --bridge br0 --net "tap:tap$n" \
    --ip "$(vsg_lab_guest_ip "$n")/24" --cpus "$GUEST_CPU" "$@" >/dev/null
}
stop_guest() {
  vsg_stop "g$1"
  local keep=() id
  for id in "${guests[@]}"; do [[ $id == "g$1" ]] || keep+=("$id"); done
  guests=("${keep[@]}")
}

# iperf3 from the sender to guest N; prints "gbps=... retr=... srtt_mean_ms=... srtt_max_ms=...".
iperf_to_guest() {
  local json
  json=$(sender iperf3 -c "$(vsg_lab_guest_ip "$1")" -t "$T" -C "$CC" -J)
  python3 -c '
import json, sys
end = json.load(sys.stdin)["end"]
s = end["streams"][0]["sender"]
print("gbps=%.3f retr=%d srtt_mean_ms=%.2f srtt_max_ms=%.2f" % (
    end["sum_received"]["bits_per_second"] / 1e9, end["sum_sent"].get("retransmits", 0),
    s.get("mean_rtt", 0) / 1000, s.get("max_rtt", 0) / 1000))' <<<"$json"
}

ping_guest() {
  sender ping -q -c 40 -i 0.05 "$(vsg_lab_guest_ip "$1")" |
    awk -F'[/ ]' '/^rtt/ {print "ping_ms(min/avg/max)=" $7 "/" $8 "/" $9}'
}

# send_checked N FILE: sends FILE to guest N's sink; prints "sha256_ok=yes|no bytes=..."
send_checked() {
  local n=$1 file=$2 before expected line
  local log
  log=$(vsg_console_log "g$n")
  before=$(grep -ac '^SHA256 ' "$log" || true)
  expected=$(sha256sum "$file" | cut -d' ' -f1)
  local started=$(date +%s%N)
  sender socat -u "FILE:$file" "TCP:$(vsg_lab_guest_ip "$n"):5001,retry=100,interval=0.1"
  local deadline=$(($(date +%s) + 120))
  until (($(grep -ac '^SHA256 ' "$log" || true) > before)); do
    (($(date +%s) < deadline)) || { echo "sha256_ok=no (no SHA256 line from the sink)"; return 1; }
    sleep 0.1
  done
  local ms=$((($(date +%s%N) - started) / 1000000))
  line=$(grep -a '^SHA256 ' "$log" | tail -n 1 | tr -d '\r')
  local got=${line#SHA256 } && got=${got%% *}
  if [[ $got == "$expected" && ${line##* } == "$(stat -c %s "$file")" ]]; then
    echo "sha256_ok=yes bytes=${line##* } sha256=$got checked_in_ms=$ms"
  else
    echo "sha256_ok=no expected=$expected sink_said='$line'"
    return 1
  fi
}


case "${1:-}" in
  bridge)
    vsg_lab_up "$prefix"
    start_guest 1 iperf3
    echo "bridge: boot_ms=$(vsg_meta_get g1 ready_ms) $(grep -a READY "$(vsg_console_log g1)" | tr -d '\r' | grep -o 'uptime=.*' | sed 's/uptime/guest_uptime_s/')"
    echo "bridge: iperf3 cc=$CC t=${T}s $(iperf_to_guest 1)"
    stop_guest 1
    start_guest 2 sink
    scratch=$(mktemp -d)
    head -c "$((SIZE_MB << 20))" /dev/urandom >"$scratch/data"
    echo "bridge: sink ${SIZE_MB} MB $(send_checked 2 "$scratch/data")"
    ;;
  stream)
    relay=${2:?usage: measure.sh stream RELAY}
    vsg_lab_up "$prefix"
    mkdir -p "$VSG_RUN_ROOT"
    sock="$VSG_RUN_ROOT/relay1.sock"
    ip netns exec "$prefix-h" taskset -c "$SENDER_CPU" "$relay" tap:tapr1 "stream:$sock" \
      >"$VSG_RUN_ROOT/relay1.log" 2>&1 &
    relay_pid=$!
    for ((i = 0; i < 100; i++)); do ip -n "$prefix-h" link show tapr1 >/dev/null 2>&1 && break; sleep 0.1; done
    ip -n "$prefix-h" link set tapr1 master br0
    ip -n "$prefix-h" link set tapr1 up
    guests+=(g1)
    vsg_start --id g1 --role iperf3 --net "stream:$sock" --ip "$(vsg_lab_guest_ip 1)/24" \
      --cpus "$GUEST_CPU" >/dev/null
    echo "stream: boot_ms=$(vsg_meta_get g1 ready_ms)"
    ping_out=$(ping_guest 1)
    echo "stream: $ping_out iperf3 cc=$CC t=${T}s $(iperf_to_guest 1)"
    ;;
  consolidate)
    k=${2:?usage: measure.sh consolidate K cfs|rrMS}
    sched=${3:-cfs}
    [[ $sched == cfs || $sched =~ ^rr[0-9]+$ ]] || { echo "SCHED is cfs or rrMS" >&2; exit 2; }
    vsg_lab_up "$prefix"
    start_guest 1 iperf3
    for ((n = 2; n <= k; n++)); do start_guest "$n" burn; done
    if [[ $sched == rr* ]]; then
      vsg_rr_quantum_save
      vsg_rr_quantum_set "${sched#rr}"
      for id in "${guests[@]}"; do vsg_sched "$id" rr; done
    fi
    sleep 2
    ping_out=$(ping_guest 1)
    echo "consolidate: K=$k sched=$sched quantum_ms=$(vsg_rr_quantum_get) $ping_out cc=$CC t=${T}s $(iperf_to_guest 1)"
    ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
