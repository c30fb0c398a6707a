#!/usr/bin/env bash
# make demo: the consolidation lab's quick run. A host whose VMs share a core, TCP flows into
# one of them from a sender outside the host, throughput through vsnoopd with vSnoop on, with
# it off, and through the Linux bridge; prints the table with the vSnoop/off ratio per cell
# and where the results are.
#
#   scripts/demo.sh                   the demo preset (emulated VMs, a few minutes)
#   scripts/demo.sh --preset qemu     any lab/run.py arguments (see lab/run.py --help)
#
# Environment: VSNOOP_BUILD (default build/release) names the build with vsnoopd.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if [[ $(id -u) -ne 0 ]]; then
  echo "demo: needs root (network namespaces, veth pairs, qemu taps); run as root" >&2
  exit 1
fi
export VSNOOP_BUILD=${VSNOOP_BUILD:-$repo/build/release}
if [[ ! -x $VSNOOP_BUILD/daemon/vsnoopd ]]; then
  echo "demo: $VSNOOP_BUILD/daemon/vsnoopd is missing: run 'make build' first" >&2
  exit 1
fi

args=("$@")
((${#args[@]})) || args=(--preset demo)
# The qemu guest is built only when a qemu preset asks for it (lab/run.py builds it too;
# here it fails early, before any measurement).
for a in "${args[@]}"; do
  if [[ $a == qemu* ]]; then
    lab/guest/build.sh --quiet
    break
  fi
done

echo "demo: $(uptime)"
echo "demo: measurements take /tmp/vsnoop-measure.lock; a run waits while another holds it"
exec /usr/bin/python3 lab/run.py "${args[@]}"
