#!/usr/bin/env bash
# molecule-all.sh [JOBS]: `molecule test` of every scenario under molecule/, JOBS at a time
# (default 2), the longest first so the lanes end together. Each scenario writes its own log,
# .cache/molecule/<scenario>.log (its hosts are named tmpnb-<scenario>, so lanes never share one);
# its duration and verdict go to .cache/molecule/summary.txt. On a failure the failed scenarios'
# summary lines and the tail of their logs are printed last (a CI page shows the tail).
set -uo pipefail
jobs=${1:-2}
out=.cache/molecule
mkdir -p "$out"
rm -f "$out"/*.log "$out"/summary.txt

# Longest first, as measured in `make test` (the default scenario, with its browser, crowd and
# fault suites, takes about a third of the whole); scenarios not named here follow alphabetically.
longest_first=(default cells rollout nginx_static firewall proxy docker limits plan)
mapfile -t all < <(for f in molecule/*/molecule.yml; do basename "$(dirname "$f")"; done | sort)
order=()
for s in "${longest_first[@]}"; do
  [[ " ${all[*]} " == *" $s "* ]] && order+=("$s")
done
for s in "${all[@]}"; do
  [[ " ${order[*]} " == *" $s "* ]] || order+=("$s")
done

one() {
  local s=$1 start rc
  start=$(date +%s)
  echo "==> molecule test -s $s (log: $out/$s.log)"
  molecule test -s "$s" >"$out/$s.log" 2>&1
  rc=$?
  printf '%-14s %5d s  %s\n' "$s" $(($(date +%s) - start)) "$([ $rc = 0 ] && echo ok || echo "FAILED (exit $rc)")" \
    | tee -a "$out/summary.txt"
  return $rc
}
export -f one
export out

printf '%s\n' "${order[@]}" | xargs -P "$jobs" -I{} bash -c 'one "$@"' _ {}
rc=$?
echo "==> molecule: scenario timings"
cat "$out/summary.txt"
if [ $rc != 0 ]; then
  for s in $(grep FAILED "$out/summary.txt" | awk '{print $1}'); do
    echo "==> $s failed; its last lines (whole log: $out/$s.log):"
    sed 's/\x1b\[[0-9;]*m//g' "$out/$s.log" | tail -n 60
    echo "==> $s: failed tests and tasks"
    sed 's/\x1b\[[0-9;]*m//g' "$out/$s.log" | grep -E '^(FAILED|ERROR) |failed=[1-9]|fatal:' | tail -n 20
  done
  exit 1
fi
