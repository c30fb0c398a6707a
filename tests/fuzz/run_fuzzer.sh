#!/usr/bin/env bash
# Runs a libFuzzer binary for a fixed budget on a fresh copy of its seed corpus (libFuzzer
# adds what it finds to the corpus it is given, and the seeds stay untouched). Exits non-zero
# on any crash, sanitizer report, leak or timeout; the input that caused it is left in
# WORK_DIR/artifacts/ to be turned into a regression test.
#   usage: run_fuzzer.sh FUZZER SEED_CORPUS WORK_DIR SECONDS
set -euo pipefail
fuzzer=$1
seeds=$2
work=$3
seconds=$4
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
cp -R "$seeds/." "$work/corpus/"
exec "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus"
