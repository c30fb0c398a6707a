#!/bin/sh
# /init of the vSnoop lab guest (busybox ash). Configures eth0 and TCP from the kernel command
# line, starts the guest's role, prints one READY line on the serial console, then keeps a shell
# on the console as the command channel (lab/guest/run.sh exec).
#
# Kernel command-line parameters (dotted names: the kernel keeps them out of init's environment):
#   vsnoop.name=NAME            hostname, echoed in the READY line           (default: guest)
#   vsnoop.role=ROLE            iperf3 | sink | burn | shell                  (default: shell)
#   vsnoop.ip=ADDR/PREFIX       eth0 address; no address leaves eth0 down
#   vsnoop.gw=ADDR              default route
#   vsnoop.mtu=N                eth0 MTU
#   vsnoop.iperf_port=N         iperf3 -s port                                (default: 5201)
#   vsnoop.sink_port=N          sink port                                     (default: 5001)
#   vsnoop.ipv6=1               keep IPv6 on (off by default: no ND/MLD chatter in traces)
#   vsnoop.cc=NAME              net.ipv4.tcp_congestion_control (loads tcp_NAME.ko if needed)
#   vsnoop.tcp_rmem_max=BYTES   third field of net.ipv4.tcp_rmem (and net.core.rmem_max)
#   vsnoop.tcp_wmem_max=BYTES   third field of net.ipv4.tcp_wmem (and net.core.wmem_max)
#   vsnoop.tcp_sack=0|1, vsnoop.tcp_timestamps=0|1, vsnoop.tcp_window_scaling=0|1,
#   vsnoop.tcp_ecn=0|1|2        the net.ipv4 sysctls of the same names
#   vsnoop.sysctl=K=V[,K=V]...  any sysctl; a ':' in V stands for a space
#
# Console lines for scripts (exact prefixes):
#   VSNOOP-GUEST-READY name=... role=... ip=... uptime=SECONDS   network and role are up
#   VSNOOP-GUEST-FAILED reason                                   set-up failed; a shell follows
#   SHA256 <hex> BYTES <n>                                       sink: one line per transfer
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
# Kernel messages would interleave with the lines scripts parse: keep only emergencies.
echo 1 >/proc/sys/kernel/printk

log() { echo "vsnoop-guest: $*"; }

console_shell() {
  # With echo off, ash reads plain lines (no line editing, no terminal queries): what comes
  # back on the console is only what commands print. A prompt only for the 'shell' role.
  stty -F /dev/ttyS0 -echo
  prompt=
  [ "$P_role" = shell ] && prompt="$P_name# "
  # PID 1 must never exit; restart the shell if someone types 'exit'.
  while :; do
    PS1=$prompt setsid cttyhack sh -i
    sleep 1
  done
}

fail() {
  echo "VSNOOP-GUEST-FAILED $*"
  console_shell
}

# ---- Parameters -------------------------------------------------------------------------------
P_name=guest
P_role=shell
P_ip=
P_gw=
P_mtu=
P_iperf_port=5201
P_sink_port=5001
P_ipv6=0
P_cc=
P_tcp_rmem_max=
P_tcp_wmem_max=
P_tcp_sack=
P_tcp_timestamps=
P_tcp_window_scaling=
P_tcp_ecn=
P_sysctl=
for p in $(cat /proc/cmdline); do
  case "$p" in
    vsnoop.*=*)
      k=${p%%=*}
      k=${k#vsnoop.}
      v=${p#*=}
      case "$k" in
        *[!a-z0-9_]* | "") log "ignoring parameter $p" ;;
        *) eval "P_$k=\$v" ;;
      esac
      ;;
  esac
done

# ---- Drivers ----------------------------------------------------------------------------------
for m in $(cat /lib/modules/load-order); do
  insmod "/lib/modules/$m.ko" || fail "insmod $m"
done

hostname "$P_name"
ip link set lo up

# IPv6 off before eth0 comes up, so it sends no router solicitations or DAD probes.
if [ "$P_ipv6" != 1 ]; then
  echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6
  echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6
fi

# ---- eth0 (brought up early: the sysctls and the role start while its link settles) --------
i=0
while [ ! -e /sys/class/net/eth0 ]; do
  i=$((i + 1))
  [ $i -gt 100 ] && fail "no eth0 after 10 s"
  sleep 0.1
done
if [ -n "$P_ip" ]; then
  [ -n "$P_mtu" ] && { ip link set eth0 mtu "$P_mtu" || fail "mtu $P_mtu"; }
  ip addr add "$P_ip" dev eth0 || fail "address $P_ip"
  ip link set eth0 up || fail "eth0 up"
  [ -n "$P_gw" ] && { ip route add default via "$P_gw" || fail "gateway $P_gw"; }
fi

# ---- Sysctls (written through /proc/sys) ------------------------------------------------------
set_sysctl() {
  f=/proc/sys/$(echo "$1" | tr . /)
  [ -f "$f" ] || fail "no sysctl $1"
  echo "$2" >"$f" || fail "cannot set $1=$2"
  log "sysctl $1=$(cat "$f")"
}
# Replace the max (third) field of tcp_rmem / tcp_wmem; raise the core limit with it.
set_mem_max() {
  # 'read' would fetch /proc/sys a byte at a time, which sysctl files do not support.
  set -- "$1" "$2" $(cat "/proc/sys/net/ipv4/tcp_$1")
  lo=$3 mid=$4
  [ "$mid" -gt "$2" ] && mid=$2
  [ "$lo" -gt "$mid" ] && lo=$mid
  set_sysctl "net.ipv4.tcp_$1" "$lo $mid $2"
  set_sysctl "net.core.$1_max" "$2"
}

if [ -n "$P_cc" ]; then
  if ! grep -qw "$P_cc" /proc/sys/net/ipv4/tcp_available_congestion_control; then
    [ -f "/lib/modules/tcp_$P_cc.ko" ] || fail "no congestion control $P_cc"
    insmod "/lib/modules/tcp_$P_cc.ko" || fail "insmod tcp_$P_cc"
  fi
  set_sysctl net.ipv4.tcp_congestion_control "$P_cc"
fi
[ -n "$P_tcp_rmem_max" ] && set_mem_max rmem "$P_tcp_rmem_max"
[ -n "$P_tcp_wmem_max" ] && set_mem_max wmem "$P_tcp_wmem_max"
for k in tcp_sack tcp_timestamps tcp_window_scaling tcp_ecn; do
  eval "v=\$P_$k"
  [ -n "$v" ] && set_sysctl "net.ipv4.$k" "$v"
done
if [ -n "$P_sysctl" ]; then
  for kv in $(echo "$P_sysctl" | tr , ' '); do
    set_sysctl "${kv%%=*}" "$(echo "${kv#*=}" | tr : ' ')"
  done
fi

# ---- Role -------------------------------------------------------------------------------------
# True once something listens on TCP port $1 (IPv4 or IPv6 socket in state LISTEN, 0A).
listening() {
  hex=$(printf '%04X' "$1")
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
    awk -v port=":$hex" '$2 ~ (port "$") && $4 == "0A" {found = 1} END {exit !found}'
}
wait_listening() {
  i=0
  until listening "$1"; do
    i=$((i + 1))
    [ $i -gt 100 ] && fail "nothing listens on port $1 after 10 s"
    sleep 0.1
  done
}

# Checked receiver: one TCP connection at a time on $P_sink_port; after each, print the SHA-256
# and the byte count of what arrived. The stream lands in /tmp (RAM) and is hashed after the
# sender closes: under TCG a pipeline nc | tee | sha256sum (+ wc) is six times slower than the
# transfer itself. So one transfer can be at most the guest's free memory.
sink_loop() {
  while :; do
    nc -l -p "$P_sink_port" </dev/null >/tmp/sink.data
    digest=$(sha256sum /tmp/sink.data)
    bytes=$(stat -c %s /tmp/sink.data)
    rm -f /tmp/sink.data
    line="SHA256 ${digest%% *} BYTES $bytes"
    echo "$line" >>/tmp/sink.log
    echo "$line"
    # nc fails at once if the port cannot be bound: do not spin.
    [ "$bytes" -eq 0 ] && sleep 1
  done
}

case "$P_role" in
  iperf3 | burn)
    iperf3 -s -D -p "$P_iperf_port" --logfile /tmp/iperf3.log || fail "iperf3 -s"
    wait_listening "$P_iperf_port"
    ;;
  sink)
    sink_loop &
    wait_listening "$P_sink_port"
    ;;
  shell) ;;
  *) fail "unknown role '$P_role'" ;;
esac

# operstate turns "up" once the kernel's link watcher has handled the carrier; until then the
# queue of eth0 can still be the noop qdisc, which drops what is sent.
if [ -n "$P_ip" ]; then
  i=0
  while [ "$(cat /sys/class/net/eth0/operstate)" != up ] && [ $i -lt 50 ]; do
    i=$((i + 1))
    sleep 0.1
  done
fi

read -r uptime _ </proc/uptime
echo "VSNOOP-GUEST-READY name=$P_name role=$P_role ip=${P_ip:-none} uptime=$uptime"

if [ "$P_role" = burn ]; then
  # The neighbour VM's work: spin forever, so the VM always wants its whole time slice.
  (while :; do :; done) &
fi

console_shell
