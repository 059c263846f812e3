#!/usr/bin/env bash
# scripts/fuzz.sh <time> [name-regexp]
#
# Runs every Fuzz* target in the repository (all modules), one at a time,
# each for <time> (a go test -fuzztime value: "30s", "10m", "100000x").
# `make fuzz FUZZTIME=30s` calls it; CI runs it briefly.
#
# go test -fuzz accepts one target per run, so targets are found with grep
# and run one by one. A crasher is saved by go test under the package's
# testdata/fuzz/<Target>/ and from then on replays as a regression test in
# every plain `go test`; commit it together with the fix. The script goes
# on with the other targets and exits non-zero at the end if any failed.
#
# FUZZPARALLEL sets the number of fuzzing workers (default: GOMAXPROCS).
# FUZZMINIMIZETIME bounds the minimization of each new interesting input
# (default 10s; go test's own default is 60s, during which a worker makes
# no progress and, with one worker, looks hung: golang/go#48820, #52569).
set -uo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 <fuzztime> [target-name-regexp]" >&2
  exit 2
fi
fuzztime=$1
only=${2:-.}
parallel=()
[ -n "${FUZZPARALLEL:-}" ] && parallel=(-parallel "$FUZZPARALLEL")

# moddir prints the directory of the go.mod that owns directory $1.
moddir() {
  local d=$1
  while [ "$d" != "." ] && [ "$d" != "/" ] && [ ! -f "$d/go.mod" ]; do d=$(dirname "$d"); done
  echo "$d"
}

# target lines: "<dir> <FuzzName>", sorted for a stable order.
mapfile -t targets < <(
  grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*\(' . \
    | grep -v -e '/vendor/' -e '/testdata/' -e '/\.git/' \
    | sed -E 's#^\./##; s#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($#\1 \2#' \
    | awk -v re="$only" '$2 ~ re' | sort -u
)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no Fuzz targets match '$only'" >&2
  exit 1
fi

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
declare -a summary
failed=0
echo "fuzz: ${#targets[@]} targets, $fuzztime each"
for t in "${targets[@]}"; do
  dir=${t% *}
  name=${t#* }
  mod=$(moddir "$dir")
  rel=${dir#"$mod"}
  rel=./${rel#/}
  log="$logdir/$(echo "$dir-$name" | tr '/' '_').log"
  echo "== $name  ($dir)"
  start=$(date +%s)
  (cd "$mod" && go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -fuzzminimizetime="${FUZZMINIMIZETIME:-10s}" "${parallel[@]}" "$rel") >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  # The last progress line carries the totals.
  last=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -1)
  execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
  interesting=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
  if [ $rc -eq 0 ]; then
    status=ok
  else
    status=FAIL
    failed=1
    # Show the failure and where go test saved the crasher.
    grep -vE '^fuzz: elapsed: ' "$log" | tail -40
    crasher=$(sed -nE 's/.*Failing input written to (.*)$/\1/p' "$log" | tail -1)
    [ -n "$crasher" ] && echo "   crasher saved: $dir/$crasher (commit it with the fix; it now runs in go test)"
  fi
  printf '   %s  execs=%s  new-interesting=%s  %ss\n' "$status" "${execs:-?}" "${interesting:-?}" "$secs"
  summary+=("$(printf '%-5s %-22s %-32s execs=%-10s new-interesting=%s' "$status" "$name" "$dir" "${execs:-?}" "${interesting:-?}")")
done

echo
echo "fuzz summary ($fuzztime per target):"
printf '  %s\n' "${summary[@]}"
exit $failed
