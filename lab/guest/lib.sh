# shellcheck shell=bash
# Bash functions to run vSnoop lab guests (qemu, TCG) and the Linux-bridge lab around them.
# Source it: `source lab/guest/lib.sh`. lab/guest/run.sh is the command-line face of it.
#
# Guests:
#   vsg_start OPTIONS...          boot a guest, wait for READY, print the qemu PID
#   vsg_stop ID                   SIGTERM, wait, SIGKILL; restore scheduling; remove sockets
#   vsg_exec ID [-t SECS] CMD     run CMD in the guest's console shell, print its output
#   vsg_wait_console ID REGEX [SECS]   wait until the console log matches an extended regex
#   vsg_console_log ID, vsg_pid ID, vsg_run_dir ID
#   vsg_sched ID rr|restore       every qemu thread to SCHED_RR priority 1, or back
# Round-robin quantum (/proc/sys/kernel/sched_rr_timeslice_ms; the caller owns it):
#   vsg_rr_quantum_save, vsg_rr_quantum_set MS, vsg_rr_quantum_restore
# Linux-bridge lab (two network namespaces, see vsg_lab_up):
#   vsg_lab_up PREFIX, vsg_lab_down PREFIX
#
# Files of guest ID live in $VSNOOP_GUEST_RUN/ID (default /tmp/vsnoop-guest/ID):
#   qemu.pid, serial.sock (the console), console.log (everything the guest printed), meta.
# The kernel and initramfs come from $VSNOOP_GUEST_DIR (default build/guest), made by build.sh.

VSG_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VSG_REPO=$(cd "$VSG_HOME/../.." && pwd)
VSG_IMAGE_DIR=${VSNOOP_GUEST_DIR:-$VSG_REPO/build/guest}
VSG_RUN_ROOT=${VSNOOP_GUEST_RUN:-/tmp/vsnoop-guest}
VSG_READY_PATTERN='VSNOOP-GUEST-READY'
VSG_FAILED_PATTERN='VSNOOP-GUEST-FAILED'

vsg_log() { echo "vsg: $*" >&2; }

vsg_run_dir() { echo "$VSG_RUN_ROOT/$1"; }
vsg_console_log() { echo "$VSG_RUN_ROOT/$1/console.log"; }

# Reads KEY from a guest's meta file (KEY=VALUE lines).
vsg_meta_get() {
  local file="$VSG_RUN_ROOT/$1/meta"
  [[ -f $file ]] || return 0
  sed -n "s/^$2=//p" "$file" | tail -n 1
}
vsg_meta_set() {
  local file="$VSG_RUN_ROOT/$1/meta"
  { grep -v "^$2=" "$file" 2>/dev/null || true; echo "$2=$3"; } >"$file.new"
  mv "$file.new" "$file"
}

# PID of guest ID's qemu, only if that process is still the qemu we started: its command line
# names this guest's pid file, so a recycled PID is never mistaken for it.
vsg_pid() {
  local dir pid
  dir=$(vsg_run_dir "$1")
  [[ -f $dir/qemu.pid ]] || return 1
  pid=$(tr -dc 0-9 <"$dir/qemu.pid")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" | grep -xF -- "$dir/qemu.pid" >/dev/null || return 1
  echo "$pid"
}

vsg_usage_start() {
  cat <<'EOF'
start options:
  --id ID                 guest name (letters, digits, . _ -); files in $VSNOOP_GUEST_RUN/ID
  --role ROLE             iperf3 | sink | burn | shell (default shell)
  --net stream:PATH       attach to a unix stream socket served by vsnoopd (or a relay)
  --net tap:IFNAME        attach to tap IFNAME (created by qemu if missing)
  --netns NS              run qemu inside network namespace NS (its tap lives there)
  --bridge BR             tap only: enslave the tap to bridge BR and bring it up
  --cpus LIST             taskset CPU list for every qemu thread (e.g. 1)
  --mem MB                guest memory (default 256)
  --ip ADDR/PREFIX        guest eth0 address          --gw ADDR   default route
  --mtu N                 guest eth0 MTU              --mac MAC   (default from the id)
  --cc NAME               guest TCP congestion control (cubic, reno, bbr, ...)
  --tcp-rmem-max BYTES, --tcp-wmem-max BYTES, --tcp-sack 0|1, --tcp-timestamps 0|1,
  --tcp-window-scaling 0|1, --tcp-ecn 0|1|2
  --sysctl KEY=VALUE      any guest sysctl (repeatable; ':' in VALUE stands for a space)
  --iperf-port N, --sink-port N   (defaults 5201, 5001)
  --rr                    put every qemu thread under SCHED_RR priority 1 once READY
  --timeout SECS          how long to wait for READY (default 120)
  --cpu-model MODEL       qemu -cpu (default qemu64, or $VSNOOP_GUEST_CPU_MODEL). Not 'max':
                          with ERMS/FSRM the guest kernel copies with 'rep movsb', which TCG
                          emulates slowly (iperf3 into the guest: 0.56 Gbit/s vs 2.2 here)
  --append "ARGS"         more kernel command-line arguments (repeatable)
EOF
}

# Boots a guest; prints its qemu PID on stdout once READY. On any failure the guest is stopped
# again and the function returns non-zero with the end of the console log on stderr.
vsg_start() {
  local id="" role=shell net="" netns="" bridge="" cpus="" mem=256 ip="" gw="" mtu="" mac=""
  local rr=0 timeout=120 cpu_model=${VSNOOP_GUEST_CPU_MODEL:-qemu64} extra_append=""
  local -a params=()
  while (($#)); do
    case "$1" in
      --id) id=$2; shift 2 ;;
      --role) role=$2; shift 2 ;;
      --net) net=$2; shift 2 ;;
      --netns) netns=$2; shift 2 ;;
      --bridge) bridge=$2; shift 2 ;;
      --cpus) cpus=$2; shift 2 ;;
      --mem) mem=$2; shift 2 ;;
      --ip) ip=$2; shift 2 ;;
      --gw) gw=$2; shift 2 ;;
      --mtu) mtu=$2; shift 2 ;;
      --mac) mac=$2; shift 2 ;;
      --rr) rr=1; shift ;;
      --timeout) timeout=$2; shift 2 ;;
      --cpu-model) cpu_model=$2; shift 2 ;;
      --append) extra_append+=" $2"; shift 2 ;;
      --cc) params+=("vsnoop.cc=$2"); shift 2 ;;
      --tcp-rmem-max | --tcp-wmem-max | --tcp-sack | --tcp-timestamps | --tcp-window-scaling | \
        --tcp-ecn | --iperf-port | --sink-port)
        local key=${1#--}
        params+=("vsnoop.${key//-/_}=$2")
        shift 2
        ;;
      --sysctl) params+=("vsnoop.sysctl=$2"); shift 2 ;;
      -h | --help) vsg_usage_start; return 0 ;;
      *) vsg_log "start: unknown option '$1'"; vsg_usage_start >&2; return 2 ;;
    esac
  done
  # Several --sysctl options become one comma-separated parameter.
  local -a merged=() sysctls=()
  local p
  for p in "${params[@]}"; do
    if [[ $p == vsnoop.sysctl=* ]]; then sysctls+=("${p#vsnoop.sysctl=}"); else merged+=("$p"); fi
  done
  if ((${#sysctls[@]})); then
    merged+=("vsnoop.sysctl=$(IFS=,; echo "${sysctls[*]}")")
  fi

  [[ $id =~ ^[A-Za-z0-9_.-]+$ ]] || { vsg_log "start: --id is required (letters, digits, . _ -)"; return 2; }
  case "$role" in iperf3 | sink | burn | shell) ;; *) vsg_log "start: unknown role '$role'"; return 2 ;; esac
  command -v qemu-system-x86_64 >/dev/null || { vsg_log "qemu-system-x86_64 missing (package qemu-system-x86)"; return 1; }

  local dir
  dir=$(vsg_run_dir "$id")
  if vsg_pid "$id" >/dev/null; then
    vsg_log "guest $id is already running (pid $(vsg_pid "$id"))"
    return 1
  fi
  mkdir -p "$dir"
  rm -f "$dir"/{qemu.pid,serial.sock,serial.sock.lock,console.log,meta,qemu.err}
  # unix socket paths are limited to 107 bytes
  if ((${#dir} + 12 > 107)); then vsg_log "run directory path too long: $dir"; return 1; fi

  "$VSG_HOME/build.sh" --quiet || return 1

  local netdev tap="" sock
  case "$net" in
    stream:?*)
      sock=${net#stream:}
      # The datapath daemon is the server; qemu connects once at start-up, so wait for it.
      local waited=0
      until [[ -S $sock ]]; do
        ((waited++ < 100)) || { vsg_log "no unix socket at $sock after 10 s"; return 1; }
        sleep 0.1
      done
      netdev="stream,id=net0,server=off,addr.type=unix,addr.path=$sock"
      ;;
    tap:?*)
      tap=${net#tap:}
      netdev="tap,id=net0,ifname=$tap,script=no,downscript=no"
      ;;
    *) vsg_log "start: --net stream:PATH or --net tap:IFNAME is required"; return 2 ;;
  esac
  if [[ -z $mac ]]; then
    # Locally administered, stable per id.
    mac=$(printf '%s' "$id" | cksum | awk '{printf "52:54:56:%02x:%02x:%02x", int($1/65536)%256, int($1/256)%256, $1%256}')
  fi

  local append="console=ttyS0 quiet loglevel=1 panic=-1 vsnoop.name=$id vsnoop.role=$role"
  [[ -n $ip ]] && append+=" vsnoop.ip=$ip"
  [[ -n $gw ]] && append+=" vsnoop.gw=$gw"
  [[ -n $mtu ]] && append+=" vsnoop.mtu=$mtu"
  ((${#merged[@]})) && append+=" ${merged[*]}"
  append+=$extra_append

  local -a launcher=()
  [[ -n $netns ]] && launcher+=(ip netns exec "$netns")
  [[ -n $cpus ]] && launcher+=(taskset -c "$cpus")
  {
    echo "id=$id"
    echo "role=$role"
    echo "net=$net"
    echo "netns=$netns"
    echo "tap=$tap"
  } >"$dir/meta"

  local started
  started=$(date +%s%N)
  VSG_STARTING_ID=$id # lets a caller's trap stop a guest that is still booting
  if ! "${launcher[@]}" qemu-system-x86_64 \
    -name "vsg-$id,debug-threads=on" -accel tcg -cpu "$cpu_model" -smp 1 -m "$mem" \
    -nodefaults -no-user-config -display none -no-reboot \
    -chardev "socket,id=console,path=$dir/serial.sock,server=on,wait=off,logfile=$dir/console.log" \
    -serial chardev:console \
    -kernel "$VSG_IMAGE_DIR/vmlinuz" -initrd "$VSG_IMAGE_DIR/initrd.cpio.gz" -append "$append" \
    -netdev "$netdev" -device "virtio-net-pci,netdev=net0,mac=$mac${VSNOOP_GUEST_NIC_OPTS:+,$VSNOOP_GUEST_NIC_OPTS}" \
    -pidfile "$dir/qemu.pid" -daemonize 2>"$dir/qemu.err"; then
    vsg_log "qemu failed to start guest $id: $(cat "$dir/qemu.err")"
    vsg_stop "$id" >/dev/null 2>&1
    VSG_STARTING_ID=""
    return 1
  fi
  local pid
  pid=$(vsg_pid "$id") || { vsg_log "qemu for $id left no pid"; VSG_STARTING_ID=""; return 1; }

  if [[ $net == stream:* ]]; then
    # qemu 7.2 connects once, after it has daemonised, and reports a failure nowhere we can
    # read: the guest would boot with a dead NIC. Wait for its connected unix stream socket
    # (during start-up it has no other: the console socket only listens). Unix sockets are
    # listed per network namespace: look in qemu's.
    local tries=0
    local -a ss_in=()
    [[ -n $netns ]] && ss_in=(ip netns exec "$netns")
    until "${ss_in[@]}" ss -xpn state established 2>/dev/null | grep -F "pid=$pid," >/dev/null; do
      if ((tries++ >= 50)); then
        vsg_log "qemu did not connect to $sock within 5 s (is its server listening?)"
        vsg_stop "$id" >/dev/null 2>&1; VSG_STARTING_ID=""; return 1
      fi
      sleep 0.1
    done
  fi
  if [[ -n $tap ]]; then
    local -a ipn=(ip)
    [[ -n $netns ]] && ipn+=(-n "$netns")
    if [[ -n $bridge ]] && ! "${ipn[@]}" link set "$tap" master "$bridge"; then
      vsg_log "cannot add $tap to bridge $bridge"
      vsg_stop "$id" >/dev/null 2>&1; VSG_STARTING_ID=""; return 1
    fi
    "${ipn[@]}" link set "$tap" up || { vsg_stop "$id" >/dev/null 2>&1; VSG_STARTING_ID=""; return 1; }
  fi

  if ! vsg_wait_console "$id" "$VSG_READY_PATTERN|$VSG_FAILED_PATTERN" "$timeout" ||
    grep -aq "$VSG_FAILED_PATTERN" "$dir/console.log"; then
    vsg_log "guest $id did not become ready; console log ends with:"
    tail -n 15 "$dir/console.log" 2>/dev/null | tr -d '\r' | sed 's/^/  | /' >&2
    vsg_stop "$id" >/dev/null 2>&1
    VSG_STARTING_ID=""
    return 1
  fi
  local ready_ms=$((($(date +%s%N) - started) / 1000000))
  vsg_meta_set "$id" ready_ms "$ready_ms"
  if ((rr)) && ! vsg_sched "$id" rr; then
    vsg_stop "$id" >/dev/null 2>&1; VSG_STARTING_ID=""; return 1
  fi
  VSG_STARTING_ID=""
  vsg_log "guest $id ready in ${ready_ms} ms: $(grep -a "$VSG_READY_PATTERN" "$dir/console.log" | tr -d '\r' | head -n 1)"
  echo "$pid"
}

# Waits until guest ID's console log matches REGEX (grep -E); fails after SECS (default 60) or
# as soon as the qemu process is gone.
vsg_wait_console() {
  local id=$1 regex=$2 secs=${3:-60} log deadline
  log=$(vsg_console_log "$id")
  deadline=$(($(date +%s) + secs))
  while :; do
    grep -aqE -- "$regex" "$log" 2>/dev/null && return 0
    vsg_pid "$id" >/dev/null || { vsg_log "guest $id: qemu is not running"; return 1; }
    (($(date +%s) < deadline)) || { vsg_log "guest $id: no /$regex/ on the console after ${secs} s"; return 1; }
    sleep 0.1
  done
}

# Runs a shell command in the guest; prints its output and returns its exit status.
vsg_exec() {
  local id=$1 timeout=30
  shift
  if [[ ${1:-} == -t ]]; then timeout=$2; shift 2; fi
  [[ ${1:-} == -- ]] && shift
  vsg_pid "$id" >/dev/null || { vsg_log "guest $id is not running"; return 1; }
  python3 "$VSG_HOME/console.py" --timeout "$timeout" "$(vsg_run_dir "$id")/serial.sock" -- "$*"
}

# chrt option for a policy name as `chrt -p` prints it.
vsg_chrt_flag() {
  case "$1" in
    SCHED_OTHER) echo -o ;; SCHED_BATCH) echo -b ;; SCHED_IDLE) echo -i ;;
    SCHED_FIFO) echo -f ;; SCHED_RR) echo -r ;; *) return 1 ;;
  esac
}

# vsg_sched ID rr       every thread of the guest's qemu under SCHED_RR priority 1 (the policy
#                       the main thread had before is kept in meta, to restore it later)
# vsg_sched ID restore  every thread back to that policy
vsg_sched() {
  local id=$1 mode=$2 pid
  pid=$(vsg_pid "$id") || { vsg_log "guest $id is not running"; return 1; }
  case "$mode" in
    rr)
      if [[ -z $(vsg_meta_get "$id" sched_before) ]]; then
        local policy priority
        policy=$(chrt -p "$pid" | sed -n 's/.*policy: *//p')
        priority=$(chrt -p "$pid" | sed -n 's/.*priority: *//p')
        vsg_meta_set "$id" sched_before "$policy $priority"
      fi
      # Threads qemu creates later inherit the policy from the thread that creates them.
      chrt -a -r -p 1 "$pid" >/dev/null || { vsg_log "chrt -r failed for guest $id"; return 1; }
      ;;
    restore)
      local before flag
      before=$(vsg_meta_get "$id" sched_before)
      [[ -n $before ]] || return 0
      flag=$(vsg_chrt_flag "${before% *}") || { vsg_log "unknown policy '$before'"; return 1; }
      chrt -a "$flag" -p "${before#* }" "$pid" >/dev/null || return 1
      vsg_meta_set "$id" sched_before ""
      ;;
    *) vsg_log "vsg_sched: mode rr or restore"; return 2 ;;
  esac
}

# Stops guest ID: restores its threads' scheduling policy, SIGTERM, up to 5 s, SIGKILL; then
# removes its sockets and pid file (console.log stays for reading). Safe to call twice.
vsg_stop() {
  local id=$1 dir pid tap netns
  dir=$(vsg_run_dir "$id")
  tap=$(vsg_meta_get "$id" tap)
  netns=$(vsg_meta_get "$id" netns)
  if pid=$(vsg_pid "$id"); then
    vsg_sched "$id" restore || true
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      vsg_log "guest $id ignored SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  # qemu created the tap without persistence: it goes when qemu's descriptor closes. Wait, so
  # that the next guest can create it again.
  if [[ -n $tap ]]; then
    local -a ipn=(ip)
    [[ -n $netns ]] && ipn+=(-n "$netns")
    local i
    for ((i = 0; i < 20; i++)); do "${ipn[@]}" link show "$tap" >/dev/null 2>&1 || break; sleep 0.1; done
  fi
  rm -f "$dir"/{qemu.pid,serial.sock,serial.sock.lock,meta,qemu.err}
}

# ---- Round-robin quantum ------------------------------------------------------------------------
VSG_RR_QUANTUM_FILE=/proc/sys/kernel/sched_rr_timeslice_ms
VSG_SAVED_RR_QUANTUM=""
vsg_rr_quantum_get() { cat "$VSG_RR_QUANTUM_FILE"; }
vsg_rr_quantum_save() { [[ -n $VSG_SAVED_RR_QUANTUM ]] || VSG_SAVED_RR_QUANTUM=$(vsg_rr_quantum_get); }
vsg_rr_quantum_set() { echo "$1" >"$VSG_RR_QUANTUM_FILE"; }
vsg_rr_quantum_restore() {
  [[ -n $VSG_SAVED_RR_QUANTUM ]] || return 0
  vsg_rr_quantum_set "$VSG_SAVED_RR_QUANTUM"
  VSG_SAVED_RR_QUANTUM=""
}

# ---- Linux-bridge lab -------------------------------------------------------------------------
# vsg_lab_up PREFIX builds, all outside the root namespace:
#   netns PREFIX-s (sender):  vs0 10.77.0.1/24
#   netns PREFIX-h (host):    bridge br0 (no address) with port vh0, the peer of vs0; guests'
#                             taps join br0. Guest N is 10.77.0.(10+N)/24 by convention.
# vsg_lab_down PREFIX deletes both namespaces (and with them every link inside).
VSG_LAB_SENDER_IP=10.77.0.1
vsg_lab_guest_ip() { echo "10.77.0.$((10 + $1))"; }
vsg_lab_up() {
  local prefix=$1
  ip netns add "$prefix-h" || return 1
  ip netns add "$prefix-s" || { ip netns del "$prefix-h"; return 1; }
  ip -n "$prefix-h" link set lo up &&
    ip -n "$prefix-s" link set lo up &&
    ip -n "$prefix-h" link add br0 type bridge &&
    ip -n "$prefix-h" link set br0 up &&
    ip link add vh0 netns "$prefix-h" type veth peer name vs0 netns "$prefix-s" &&
    ip -n "$prefix-h" link set vh0 master br0 &&
    ip -n "$prefix-h" link set vh0 up &&
    ip -n "$prefix-s" addr add "$VSG_LAB_SENDER_IP/24" dev vs0 &&
    ip -n "$prefix-s" link set vs0 up || { vsg_lab_down "$prefix"; return 1; }
}
vsg_lab_down() {
  local prefix=$1
  ip netns del "$prefix-s" 2>/dev/null || true
  ip netns del "$prefix-h" 2>/dev/null || true
}
