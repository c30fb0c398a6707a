#!/usr/bin/env bash
# A short run of vsnoop_bench for ctest: the benchmarks check every verdict and stop with
# "ERROR OCCURRED" when a segment is not handled as the path they measure, but the binary
# still exits 0; this fails the test instead. Usage: smoke.sh VSNOOP_BENCH [FILTER]
set -euo pipefail
bench=$1
filter=${2:-.}
output=$("$bench" --benchmark_filter="$filter" --benchmark_min_time=0.01 2>&1)
echo "$output"
if grep -q "ERROR OCCURRED" <<<"$output"; then
  echo "smoke.sh: a benchmark stopped with an error" >&2
  exit 1
fi
