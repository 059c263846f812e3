#!/usr/bin/env bash
# Fails when go.mod/go.sum of the root module or of bench/ are not what
# `go mod tidy` would write (a requirement marked // indirect that is
# imported directly, a missing or unused one, stale go.sum lines), and
# prints the difference. make lint and make test run it.
set -euo pipefail
cd "$(dirname "$0")/.."
rc=0
for mod in . bench; do
  [ -f "$mod/go.mod" ] || continue
  if ! diff=$(cd "$mod" && go mod tidy -diff 2>/dev/null); then
    echo "go.mod/go.sum in $mod are not tidy: run (cd $mod && go mod tidy) and commit the result" >&2
    printf '%s\n' "$diff" | head -60 >&2
    rc=1
  fi
done
[ $rc -eq 0 ] && echo "go.mod tidy: ok"
exit $rc
