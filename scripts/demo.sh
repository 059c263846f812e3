#!/usr/bin/env bash
# make demo: start the echo example server on the embedded `local`
# registry, run the client against it (sync, async, one-way, stream, a
# typed error, a deadline that expires), then stop the server gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/echo ./examples/echo
dir=$(mktemp -d)
./bin/echo server -registry-dir "$dir" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
./bin/echo client -registry-dir "$dir"
kill -TERM "$pid"
wait "$pid"
trap - EXIT
rm -rf "$dir"
echo "demo: done"
