#!/usr/bin/env bash
# Cross-framework benchmark (make bench). Builds bench/cmd/kitebench and
# runs Kite, gRPC-go, drpc, net/rpc and the raw framing limit with server
# and client in separate processes (pinned with taskset when available),
# then measures a Kite server holding idle connections.
#
#   scripts/bench.sh                                   # short: 1 KiB c=100, 2 s, 1 round + idle check
#   scripts/bench.sh -d 10s -rounds 3 -workloads all   # long
#   scripts/bench.sh -systems kite,grpc -pin off -no-idle
#
# Flags other than the ones below go to `kitebench run` (kitebench run -h):
#   -no-idle          skip the idle-connection memory check
#   -idle-conns N     connections for the idle check (default 10000)
#   -out DIR          where results.md/json, chart.svg, idle.md go (default bench/results/local)
#   -timeout DUR      bound on the whole benchmark (default 30m)
# Loopback only. Every process started is killed by PID on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

idle=1
idle_conns=10000
out="$ROOT/bench/results/local"
limit=30m
run_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -no-idle|--no-idle) idle=0 ;;
    -idle-conns|--idle-conns) idle_conns=$2; shift ;;
    -out|--out) out=$2; shift ;;
    -timeout|--timeout) limit=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) run_args+=("$1") ;;
  esac
  shift
done

tmp=$(mktemp -d)
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 10,000 idle connections need as many descriptors in the server and in
# the client process; raise the soft limit as far as allowed.
hard=$(ulimit -Hn)
want=$((idle_conns + 1024))
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
  ulimit -Hn "$want" 2>/dev/null || true
fi
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || ulimit -Sn "$want" 2>/dev/null || true

echo "building kitebench ..." >&2
go build -C bench -o "$tmp/kitebench" ./cmd/kitebench

# run_bounded CMD...: runs CMD under timeout(1) in the background with
# its PID recorded, so the EXIT trap can kill it, and stops it after
# $limit (SIGTERM, then SIGKILL 10 s later; kitebench kills its own
# children by PID on SIGTERM).
run_bounded() {
  timeout --kill-after=10s "$limit" "$@" &
  local p=$!
  pids+=("$p")
  wait "$p"
}

rc=0
run_bounded "$tmp/kitebench" run -out "$out" "${run_args[@]}" || rc=$?
if [ "$idle" = 1 ]; then
  echo >&2
  echo "idle-connection memory check ($idle_conns connections) ..." >&2
  run_bounded "$tmp/kitebench" idle -conns "$idle_conns" -out "$out" || rc=$?
fi
echo >&2
echo "results in $out" >&2
exit $rc
