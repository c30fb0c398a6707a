#!/usr/bin/env bash
# End-to-end test of the vSnoop lab guest (lab/guest): builds it if needed, boots it on a tap
# enslaved to a Linux bridge in a private network namespace, sends 4 MiB of random data from a
# sender namespace to the guest's sink role, and checks the SHA-256 and byte count the guest
# prints against the sender's. Also checks the console command channel (output and exit status)
# and that stopping the guest leaves no process and no tap behind.
#
# Exit status: 0 pass, 1 fail, 77 skip (not root, no qemu, no /dev/net/tun, no namespaces).
# Everything it creates (namespaces vsg-t<pid>-*, their links, the qemu process, files in
# /tmp/vsg-t<pid>) is removed on exit, also after a failure, an interrupt or a SIGKILL.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/lab/guest/lib.sh"

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || skip "needs root (namespaces, taps)"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
qemu-system-x86_64 -accel help 2>/dev/null | grep -x tcg >/dev/null || skip "qemu has no TCG"
[[ -c /dev/net/tun ]] || skip "no /dev/net/tun"
command -v socat >/dev/null || fail "socat missing (scripts/install-deps.sh installs it)"

prefix="vsg-t$$"
VSG_RUN_ROOT="/tmp/$prefix"
data="$VSG_RUN_ROOT/data"
cleanup() {
  vsg_stop g1
  vsg_lab_down "$prefix"
  rm -rf "$VSG_RUN_ROOT"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# A kill no trap sees (SIGKILL, as from a test timeout) must not leave the guest, the
# namespaces or the files behind either: a watcher in a session of its own (a kill aimed
# at this script's process group spares it) does the same clean-up once this script is gone.
setsid bash -c '
  while kill -0 "$1" 2>/dev/null; do sleep 1; done
  source "$2/lab/guest/lib.sh"
  VSG_RUN_ROOT=$3
  vsg_stop g1
  vsg_lab_down "$4"
  rm -rf "$3"' vsg-watch $$ "$repo" "$VSG_RUN_ROOT" "$prefix" </dev/null >/dev/null 2>&1 &

ip netns add "$prefix-probe" 2>/dev/null || skip "cannot create network namespaces"
ip netns del "$prefix-probe"

started=$(date +%s)
"$repo/lab/guest/build.sh" --quiet || fail "guest build failed"

vsg_lab_up "$prefix" || fail "cannot build the bridge lab"
guest_ip=$(vsg_lab_guest_ip 1)
pid=$(vsg_start --id g1 --role sink --netns "$prefix-h" --bridge br0 --net tap:tap1 \
  --ip "$guest_ip/24" --gw "$VSG_LAB_SENDER_IP" --mtu 1400 --cc bbr --tcp-sack 0 \
  --tcp-rmem-max 8388608 --sysctl net.ipv4.tcp_wmem=4096:32768:1048576 --timeout 240) ||
  fail "guest did not boot"
echo "guest booted: qemu pid $pid, $(vsg_meta_get g1 ready_ms) ms to READY"

# The kernel command line reached the guest's network set-up and sysctls.
expect_in_guest() {
  local got
  got=$(vsg_exec g1 -- "$1" | tr -s ' \t' '  ') || fail "exec '$1' failed"
  [[ $got == "$2" ]] || fail "in the guest, '$1' gave '$got', expected '$2'"
}
expect_in_guest 'cat /sys/class/net/eth0/mtu' 1400
expect_in_guest 'ip route | grep ^default | cut -d" " -f1-5' "default via $VSG_LAB_SENDER_IP dev eth0"
expect_in_guest 'cat /proc/sys/net/ipv4/tcp_congestion_control' bbr
expect_in_guest 'cat /proc/sys/net/ipv4/tcp_sack' 0
expect_in_guest 'cat /proc/sys/net/ipv4/tcp_rmem' '4096 131072 8388608'
expect_in_guest 'cat /proc/sys/net/ipv4/tcp_wmem' '4096 32768 1048576'

# Command channel: output comes back, and so does the exit status.
snmp=$(vsg_exec g1 -- 'cat /proc/net/snmp') || fail "exec cat /proc/net/snmp failed"
grep -q '^Tcp: RtoAlgorithm' <<<"$snmp" || fail "no Tcp header in /proc/net/snmp: $snmp"
vsg_exec g1 -- 'echo to-stderr >&2; exit 7' >/dev/null
status=$?
((status == 7)) || fail "exec returned $status, expected the command's status 7"

mkdir -p "$VSG_RUN_ROOT"
head -c $((4 << 20)) /dev/urandom >"$data"
expected="SHA256 $(sha256sum "$data" | cut -d' ' -f1) BYTES $((4 << 20))"
ip netns exec "$prefix-s" socat -u "FILE:$data" "TCP:$guest_ip:5001,retry=100,interval=0.1" ||
  fail "could not send to the sink"
vsg_wait_console g1 '^SHA256 ' 120 || fail "the sink printed no SHA256 line"
got=$(grep -a '^SHA256 ' "$(vsg_console_log g1)" | tail -n 1 | tr -d '\r')
[[ $got == "$expected" ]] || fail "sink printed '$got', sender expected '$expected'"
echo "sink checked: $got"

vsg_stop g1
kill -0 "$pid" 2>/dev/null && fail "qemu pid $pid still running after stop"
ip -n "$prefix-h" link show tap1 >/dev/null 2>&1 && fail "tap1 still exists after stop"
echo "PASS ($(($(date +%s) - started)) s)"
exit 0
