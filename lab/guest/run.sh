#!/usr/bin/env bash
# Runs vSnoop lab guests: small qemu (TCG) VMs attached to vsnoopd's stream socket or to a tap.
#
#   run.sh start --id ID --net stream:PATH|tap:IFNAME [options]   boot; print the qemu PID
#   run.sh stop ID                      stop it (SIGTERM, then SIGKILL), remove its sockets
#   run.sh exec ID [-t SECS] -- CMD     run CMD in the guest, print its output, return its status
#   run.sh wait ID REGEX [SECS]         wait until the guest's console shows REGEX
#   run.sh log ID                       print the path of the guest's console log
#   run.sh pid ID                       print the qemu PID (fails if not running)
#   run.sh sched ID rr|restore          qemu threads to SCHED_RR priority 1, or back
#   run.sh quantum [MS]                 print, or set, /proc/sys/kernel/sched_rr_timeslice_ms
#   run.sh console ID                   attach the terminal to the serial console (socat)
#   run.sh start --help                 the start options
#
# Builds the guest first if needed (lab/guest/build.sh). See docs/guest.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

cmd=${1:-}
(($#)) && shift
case "$cmd" in
  start)
    # Interrupted or failed while booting: stop the half-started guest (only the one this call
    # started; vsg_start clears VSG_STARTING_ID once the guest is ready).
    stop_half_started() { [[ -z ${VSG_STARTING_ID:-} ]] || vsg_stop "$VSG_STARTING_ID"; }
    trap stop_half_started EXIT
    trap 'exit 130' INT TERM
    vsg_start "$@"
    ;;
  stop) (($# == 1)) || usage; vsg_stop "$1" ;;
  exec) (($# >= 2)) || usage; vsg_exec "$@" ;;
  wait) (($# >= 2)) || usage; vsg_wait_console "$@" ;;
  log) (($# == 1)) || usage; vsg_console_log "$1" ;;
  pid) (($# == 1)) || usage; vsg_pid "$1" ;;
  sched) (($# == 2)) || usage; vsg_sched "$1" "$2" ;;
  quantum)
    if (($# == 0)); then vsg_rr_quantum_get; else vsg_rr_quantum_set "$1"; fi
    ;;
  console)
    (($# == 1)) || usage
    vsg_pid "$1" >/dev/null || { vsg_log "guest $1 is not running"; exit 1; }
    echo "vsg: console of $1; Ctrl-D leaves (the guest keeps running)" >&2
    exec socat STDIO "UNIX-CONNECT:$(vsg_run_dir "$1")/serial.sock"
    ;;
  *) usage ;;
esac
