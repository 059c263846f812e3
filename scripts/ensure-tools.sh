#!/usr/bin/env bash
# Installs the tools tests need that Go's module graph does not provide:
#   protoc         Debian's protobuf-compiler (cmd/protoc-gen-kite's
#                  TestRegenerateGreeter runs the real toolchain; the
#                  committed greeter.pb.go says which protoc made it)
#   protoc-gen-go  built into .kite/bin at the google.golang.org/protobuf
#                  version go.mod requires, so generated code matches
#   grpcurl        built from its Go module at a pinned version into
#                  .kite/bin/grpcurl-<version> for core/grpcsvc's test
#                  (a cold build took 436 s wall / 75 s CPU on the shared
#                  CI machine; later runs reuse the binary)
# make test runs it and puts .kite/bin first on PATH; under CI a test
# that still finds a tool missing fails (internal/testkit.Missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "installing protoc (Debian protobuf-compiler) for the protoc-gen-kite test..." >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq protobuf-compiler >/dev/null
fi
mkdir -p .kite/bin
want=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
have=$(.kite/bin/protoc-gen-go --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "building protoc-gen-go $want into .kite/bin..." >&2
  go build -o .kite/bin/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
fi
grpcurl_version=v1.9.3 # keep in step with core/grpcsvc's grpcurlVersion
if [ ! -x ".kite/bin/grpcurl-$grpcurl_version" ]; then
  echo "building grpcurl $grpcurl_version into .kite/bin..." >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS=-buildvcs=false go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$grpcurl_version")
  mv "$tmp/grpcurl" ".kite/bin/grpcurl-$grpcurl_version"
  rm -rf "$tmp"
fi
echo "tools: $(protoc --version), protoc-gen-go $(.kite/bin/protoc-gen-go --version | awk '{print $2}')" >&2
