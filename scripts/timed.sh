#!/usr/bin/env bash
# timed.sh PHASE CMD...: run CMD, then print and record how long the phase took.
set -uo pipefail
phase=$1; shift
mkdir -p .cache
start=$(date +%s)
"$@"; rc=$?
secs=$(( $(date +%s) - start ))
printf '%-12s %5d s  %s\n' "$phase" "$secs" "$([ $rc = 0 ] && echo ok || echo "FAILED (exit $rc)")" \
  | tee -a .cache/timings.txt
exit $rc
