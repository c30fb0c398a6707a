#!/usr/bin/env bash
# Fails if the core library (argument: libvsnoop_core.a) refers to any symbol outside the
# C++ standard library's memory, string and exception support: no syscalls, no clocks, no
# threads, no stdio. Sanitizer runtime hooks are allowed in sanitized builds.
set -euo pipefail
lib=$1
allowed='^(memcpy|memmove|memset|memcmp|abort|strlen|__stack_chk_fail|__cxa_[a-z_]+|__gxx_personality_v0|_Unwind_Resume|_Znwm.*|_ZdlPv.*|_Znam.*|_ZdaPv.*|_ZSt[0-9]+__throw_[a-z_]+.*|__(a|ub|l|t)san_.*|__sanitizer_.*|_GLOBAL_OFFSET_TABLE_|__dso_handle)$'
defined=$(nm -g --defined-only "$lib" 2>/dev/null | awk 'NF == 3 {print $3}' | sort -u)
needed=$(nm -u "$lib" | awk 'NF == 2 {print $2}' | sort -u | comm -23 - <(echo "$defined"))
bad=$(echo "$needed" | grep -Ev "$allowed" | grep -v '^$' || true)
if [[ -n $bad ]]; then
  echo "core library refers to symbols outside its allowed set:"
  echo "$bad" | while read -r s; do echo "  $s  ($(echo "$s" | c++filt))"; done
  exit 1
fi
echo "core library: $(echo "$needed" | grep -vc '^$') external symbols, all allowed:" $needed
