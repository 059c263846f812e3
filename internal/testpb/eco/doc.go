// Package eco holds two proto packages, eco.v1 (ecov1) and eco.v2
// (ecov2), that both declare a service Inventory: the case of issue 18
// point 1, which Kite's short wire names could not register side by side.
// Tests only. Regenerate the messages (protoc-gen-go) and Kite stubs
// (protoc-gen-kite) with `go generate` here; it needs protoc and
// protoc-gen-go on PATH (scripts/ensure-tools.sh) and builds
// protoc-gen-kite from this repository.
package eco

//go:generate sh -c "d=$(mktemp -d) && trap 'rm -rf $d' EXIT && go build -o $d/protoc-gen-kite github.com/kiterpc/kite/cmd/protoc-gen-kite && protoc --plugin=protoc-gen-kite=$d/protoc-gen-kite --go_out=. --go_opt=paths=source_relative --kite_out=. --kite_opt=paths=source_relative ecov1/inventory.proto ecov2/inventory.proto"
