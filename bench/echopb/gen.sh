#!/usr/bin/env bash
# Regenerates the committed echo stubs. Tools:
#   apt-get install protobuf-compiler
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
#   go install storj.io/drpc/cmd/protoc-gen-go-drpc@v1.0.0
set -euo pipefail
cd "$(dirname "$0")"
PATH="$(go env GOPATH)/bin:$PATH"
protoc -I . \
  --go_out=paths=source_relative:. \
  --go-grpc_out=paths=source_relative:. \
  --go-drpc_out=paths=source_relative:. \
  echo.proto
