#!/usr/bin/env bash
# make demo: run the echo example as kite.hcl describes it — the server
# block "echo" on the embedded `local` registry, then the client block
# "echo" against it (sync, async, one-way, stream, a typed error, a
# deadline that expires) — and stop the server gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/echo ./examples/echo
./bin/echo server -config kite.hcl &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap cleanup EXIT
./bin/echo client -config kite.hcl
kill -TERM "$pid"
wait "$pid"
trap - EXIT
echo "demo: done"
