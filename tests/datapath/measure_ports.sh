#!/bin/bash
# Measures the AF_PACKET port adapter: round-trip latency of sparse traffic (ping) and TCP
# throughput (iperf3, cubic, 10 s) between two namespaces joined either by a Linux bridge or
# by port_forward (two PacketPorts). Needs root, iproute2, ethtool, iperf3.
#
#   measure_ports.sh PORT_FORWARD [CASE...]
#
# A CASE is NAME:OFFLOADS[:port_forward arguments, comma-separated], e.g.
#   bridge:on        Linux bridge, veth offloads on (TSO/GSO super-frames)
#   v3:on:--ring,v3  port_forward with a TPACKET_V3 ring, vnet headers on
#   v2:off:--ring,v2,--vnet,off,--max-frame,1518   offloads off: MTU-sized frames
# Topology (fresh for each case; everything is removed on exit):
#   vst-m-src [vst-ms 10.78.0.1] -- [vst-mf0] vst-m-fwd [vst-mf1] -- [vst-md 10.78.0.2] vst-m-dst
set -euo pipefail

FORWARDER=${1:?usage: $0 PORT_FORWARD [CASE...]}
shift
CASES=("$@")
if [ ${#CASES[@]} -eq 0 ]; then
  CASES=(bridge:on v3:on:--ring,v3 v2:on:--ring,v2
         bridge:off v3:off:--ring,v3,--vnet,off,--max-frame,1518
         v2:off:--ring,v2,--vnet,off,--max-frame,1518)
fi
PING_COUNT=${PING_COUNT:-100}
PING_INTERVAL=${PING_INTERVAL:-0.1}
IPERF_SECONDS=${IPERF_SECONDS:-10}  # 0: latency only

SRC=vst-m-src FWD=vst-m-fwd DST=vst-m-dst
FORWARDER_PID=""
SERVER_PID=""
WORK=$(mktemp -d /tmp/vst-measure-XXXXXX)

cpu_ticks() {  # user + system clock ticks of a process, all threads
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

teardown() {
  if [ -n "$FORWARDER_PID" ]; then kill -TERM "$FORWARDER_PID" 2>/dev/null || true; wait "$FORWARDER_PID" 2>/dev/null || true; fi
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  FORWARDER_PID="" SERVER_PID=""
  for ns in $SRC $FWD $DST; do ip netns del $ns 2>/dev/null || true; done
}
trap 'teardown; rm -rf "$WORK"' EXIT

setup() {  # $1: on|off (veth checksum and segmentation offloads)
  for ns in $SRC $FWD $DST; do
    ip netns add $ns
    ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n $ns link set lo up
  done
  ip link add vst-ms netns $SRC type veth peer name vst-mf0 netns $FWD
  ip link add vst-md netns $DST type veth peer name vst-mf1 netns $FWD
  ip -n $SRC addr add 10.78.0.1/24 dev vst-ms
  ip -n $DST addr add 10.78.0.2/24 dev vst-md
  for pair in $SRC:vst-ms $FWD:vst-mf0 $FWD:vst-mf1 $DST:vst-md; do
    ns=${pair%%:*} dev=${pair#*:}
    ip -n $ns link set $dev up
    if [ "$1" = off ]; then ip netns exec $ns ethtool -K $dev tx off tso off gso off gro off >/dev/null; fi
  done
}

run_case() {  # NAME:OFFLOADS[:ARGS]
  local name offloads args
  IFS=: read -r name offloads args <<<"$1"
  setup "$offloads"
  if [ "$name" = bridge ]; then
    ip -n $FWD link add vst-mbr type bridge
    ip -n $FWD link set vst-mf0 master vst-mbr
    ip -n $FWD link set vst-mf1 master vst-mbr
    ip -n $FWD link set vst-mbr up
  else
    ip netns exec $FWD "$FORWARDER" ${args//,/ } vst-mf0 vst-mf1 >"$WORK/forwarder.out" 2>&1 &
    FORWARDER_PID=$!
  fi
  sleep 1
  ip netns exec $SRC ping -q -c 3 -i 0.2 10.78.0.2 >/dev/null  # ARP, warm-up
  local rtt
  rtt=$(ip netns exec $SRC ping -q -c "$PING_COUNT" -i "$PING_INTERVAL" 10.78.0.2 | sed -n 's/^rtt .* = //p')
  echo "== $name offloads=$offloads ${args//,/ }"
  echo "   ping rtt min/avg/max/mdev = $rtt"
  if [ "$IPERF_SECONDS" -gt 0 ]; then
    ip netns exec $DST iperf3 -s -1 >/dev/null 2>&1 &
    SERVER_PID=$!
    sleep 0.5
    local cpu_before=0 cpu_after=0
    [ -n "$FORWARDER_PID" ] && cpu_before=$(cpu_ticks "$FORWARDER_PID")
    ip netns exec $SRC iperf3 -c 10.78.0.2 -C cubic -t "$IPERF_SECONDS" -J >"$WORK/iperf.json"
    [ -n "$FORWARDER_PID" ] && cpu_after=$(cpu_ticks "$FORWARDER_PID")
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    # The forwarder's CPU time (user + system, all threads) while iperf3 ran, per GB moved:
    # a figure that depends less on what else the machine runs than the throughput does.
    python3 -c '
import json, os, sys
e = json.load(open(sys.argv[1]))["end"]
gbit = e["sum_received"]["bits_per_second"] / 1e9
print("   iperf3 cubic %ss: %.2f Gbit/s, %d retransmits" % (sys.argv[2], gbit, e["sum_sent"]["retransmits"]))
ticks = int(sys.argv[4]) - int(sys.argv[3])
if ticks > 0:
    cpu = ticks / os.sysconf("SC_CLK_TCK")
    gbytes = e["sum_received"]["bytes"] / 1e9
    print("   forwarder CPU %.2f s over the transfer: %.3f CPU-s per GB, %.0f%% of one core" % (cpu, cpu / gbytes, 100 * cpu / float(sys.argv[2])))
' "$WORK/iperf.json" "$IPERF_SECONDS" "$cpu_before" "$cpu_after"
  fi
  if [ -n "$FORWARDER_PID" ]; then
    kill -TERM "$FORWARDER_PID"; wait "$FORWARDER_PID" || true; FORWARDER_PID=""
    sed 's/^/   /' "$WORK/forwarder.out"
  fi
  teardown
}

for c in "${CASES[@]}"; do run_case "$c"; done
