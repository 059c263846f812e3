#!/usr/bin/env bash
# Installs what the Node plugin SDK (sdk/node) and its tests need: Node.js
# (Debian's nodejs when none is installed), the openssl tool (its AutoMTLS
# certificates), and the SDK's npm dependencies (@grpc/grpc-js,
# @grpc/proto-loader) from sdk/node/package-lock.json with npm ci. CI runs
# this before the tests; under CI=true tests/polyglot's Node tests fail,
# never skip, without it.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "installing ${need[*]} (Debian packages) for the Node plugin SDK tests..." >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Reinstall when the lock file is newer than the installed tree.
if [ ! -f sdk/node/node_modules/.package-lock.json ] ||
  [ sdk/node/package-lock.json -nt sdk/node/node_modules/.package-lock.json ]; then
  (cd sdk/node && npm ci --no-audit --no-fund --loglevel=error)
fi
