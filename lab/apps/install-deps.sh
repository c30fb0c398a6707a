#!/bin/sh
# Debian packages for the application experiments (lab/apps/), installed with apt-get only
# when an experiment needs them; kept out of scripts/install-deps.sh so `make test` stays fast.
#
#   lab/apps/install-deps.sh web    # nginx, PostgreSQL, psycopg2, wrk
#   lab/apps/install-deps.sh mpi    # Open MPI (mpirun, mpicxx)
#   lab/apps/install-deps.sh        # both
set -eu
web="nginx postgresql python3-psycopg2 wrk"
mpi="openmpi-bin libopenmpi-dev"
case "${1:-all}" in
  web) wanted=$web ;;
  mpi) wanted=$mpi ;;
  all) wanted="$web $mpi" ;;
  *) echo "usage: $0 [web|mpi|all]" >&2; exit 2 ;;
esac
missing=""
for p in $wanted; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
echo "[apps] installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing or stale on a fresh machine: update once if needed.
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing || {
  apt-get update
  apt-get install -y --no-install-recommends $missing
}
# The postgresql package starts a system cluster; the experiment runs its own in a private
# directory and does not need it.
if echo "$missing" | grep -q postgresql; then
  systemctl stop postgresql 2>/dev/null || service postgresql stop 2>/dev/null || true
fi
