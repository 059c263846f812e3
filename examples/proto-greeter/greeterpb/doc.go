// Package greeterpb holds the messages (protoc-gen-go) and Kite stubs
// (protoc-gen-kite) generated from greeter.proto. Regenerate with
// `go generate` in this directory; it needs protoc (Debian package
// protobuf-compiler) and protoc-gen-go on PATH, and builds
// protoc-gen-kite from this repository.
package greeterpb

//go:generate sh -c "d=$(mktemp -d) && trap 'rm -rf $d' EXIT && go build -o $d/protoc-gen-kite github.com/kiterpc/kite/cmd/protoc-gen-kite && protoc --plugin=protoc-gen-kite=$d/protoc-gen-kite --go_out=. --go_opt=paths=source_relative --kite_out=. --kite_opt=paths=source_relative greeter.proto"
