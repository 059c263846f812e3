#!/usr/bin/env bash
# scripts/cluster-soak.sh — `make cluster-soak`: the cluster scenarios of
# issue 14 repeated under load for a bounded time (default 5 minutes):
#
#   tests/cluster/hosts     multi-host scenarios 3-5 (network namespaces,
#                           nft partitions and loss, latency proxies)
#   tests/cluster/ensemble  registry ensembles, scenarios 1-2 (when the
#                           package has tests)
#
#   CLUSTER_SOAK=2m make cluster-soak      # shorter run
#   CLUSTER_SOAK_FLAGS=-race make cluster-soak
#
# Both packages run at the same time and honour KITE_CLUSTER_SOAK_DURATION
# (set from CLUSTER_SOAK): each repeats its scenarios' rounds until that
# much time has passed. The multi-host scenarios print a SUMMARY line
# each (rounds, calls, failed, lost, failovers, detection and recovery
# times), the ensemble ones a "total:" line; both are collected at the
# end. The full log goes to .kite/cluster-soak.log.
# Needs root (network namespaces); the tools are installed on first run.
# Exit status: non-zero when any scenario failed (a lost call among them).
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${CLUSTER_SOAK:-5m}"
# seconds of a Go duration made of h, m and s parts ("5m", "1m30s", "90s").
secs=0 rest=$duration
while [[ $rest =~ ^([0-9]+)(h|m|s)(.*)$ ]]; do
  n=${BASH_REMATCH[1]}
  case ${BASH_REMATCH[2]} in h) n=$((n * 3600)) ;; m) n=$((n * 60)) ;; esac
  secs=$((secs + n)) rest=${BASH_REMATCH[3]}
done
if [ -n "$rest" ] || [ "$secs" -eq 0 ]; then
  echo "cluster-soak: CLUSTER_SOAK=$duration: want a duration such as 5m, 90s or 1m30s" >&2
  exit 2
fi
export KITE_CLUSTER_SOAK_DURATION="$duration"

bash scripts/ensure-netns.sh
pkgs=(./tests/cluster/hosts/)
if compgen -G 'tests/cluster/ensemble/*_test.go' >/dev/null; then
  pkgs+=(./tests/cluster/ensemble/)
else
  echo "cluster-soak: tests/cluster/ensemble has no tests yet: running the multi-host scenarios only" >&2
fi

mkdir -p .kite
log=.kite/cluster-soak.log
echo "cluster-soak: ${pkgs[*]} for $duration each (log: $log)" >&2
rc=0
# The last round of each scenario may run past the duration: 15 minutes
# of slack before go test gives up.
# shellcheck disable=SC2086
go test -count=1 -v -p 2 -timeout "$((secs + 900))s" ${CLUSTER_SOAK_FLAGS:-} "${pkgs[@]}" >"$log" 2>&1 || rc=$?

echo
echo "== make cluster-soak summary ($duration per package) =="
grep -E '^(ok|FAIL)|^--- (PASS|FAIL)' "$log" || true
# SUMMARY lines (tests/cluster/hosts) and the tests' "total:" lines
# (tests/cluster/ensemble).
grep -hE '^SUMMARY|_test\.go:[0-9]+: total:' "$log" | sed -E 's/^[[:space:]]+//' || echo "  (no summary lines: see $log)"
if [ "$rc" -ne 0 ]; then
  echo "cluster-soak: FAILED (exit $rc); failing tests:" >&2
  grep -E '^\s*--- FAIL' "$log" >&2 || true
fi
exit $rc
