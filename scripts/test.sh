#!/usr/bin/env bash
# The project's test command (make test / .ci/run): start the services
# the integration tests need, build plugin binaries, run go test -race,
# stop what was started.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f scripts/services.sh ]; then
  bash scripts/services.sh up
  trap 'bash scripts/services.sh down' EXIT
  # shellcheck disable=SC1091
  [ -f .kite/services.env ] && source .kite/services.env && export $(cut -d= -f1 .kite/services.env)
fi

make --no-print-directory plugins
go vet ./...
go test -race -count=1 -timeout 20m ./...
