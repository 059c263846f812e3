#!/usr/bin/env bash
# Installs what the Python plugin SDK (sdk/python) and its tests need, from
# Debian's packages, when missing: Debian's python3 with grpcio, protobuf
# and cryptography (AutoMTLS certificates), and protoc to check that the
# committed generated code matches kiteplugin.proto. tests/polyglot starts
# Python plugins with /usr/bin/python3 (the interpreter these packages
# install into, whatever python3 is first on PATH). CI runs this before
# the tests; under CI=true those tests fail, never skip, without it.
set -euo pipefail
need=()
/usr/bin/python3 -c 'import grpc, google.protobuf, cryptography' 2>/dev/null ||
  need+=(python3 python3-grpcio python3-protobuf python3-cryptography)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing ${need[*]} (Debian packages) for the Python plugin SDK tests..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
/usr/bin/python3 -c 'import grpc; print("python3-grpcio", grpc.__version__)' >&2
