#!/usr/bin/env bash
# scripts/soak.sh [extra kite-soak flags]
#
# Runs the soak: a bounded load against three Kite servers, each behind an
# in-process fault proxy, with faults injected on a schedule (cut, delay,
# black-hole, refuse, corrupt, crash and graceful restarts). It reports
# calls made, OK, errors by code, calls LOST (returned neither a result nor
# an error within deadline + grace; must be 0), and goroutines and RSS
# sampled every 5 s, judged minute 2 against the last minute (window
# averages, with the range and trend). `make soak` calls it.
#
#   SOAK=60s make soak          # shorter run (default 10m)
#   SOAK_ARGS="-rate 0" make soak
#
# A hostile client (cmd/kite-soak/hostile.go) attacks one server every
# 10 s during the run: 200 idle streams, 8 decompression bombs, a window
# overrun; the servers must hold each (-hostile-every sets the period).
#
# The JSON report goes to .kite/soak.json. Exit status: non-zero when a
# call was lost or answered wrongly, a hostile client was not held, or
# (-strict) goroutines or RSS drifted more than 10% from the mark to the
# end.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${SOAK:-10m}"
mkdir -p .kite
go build -o .kite/kite-soak ./cmd/kite-soak
# shellcheck disable=SC2086
exec .kite/kite-soak -duration "$duration" -strict -json .kite/soak.json ${SOAK_ARGS:-} "$@"
