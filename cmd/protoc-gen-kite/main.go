// Command protoc-gen-kite is a protoc plugin that generates Kite stubs for
// the services of .proto files: a typed <Service>Client over *core.Client,
// a <Service>Server interface, typed stream wrappers, and a
// core.ServiceDesc whose handlers call the implementation without
// reflection. Messages themselves come from protoc-gen-go; run both:
//
//	protoc --go_out=. --go_opt=paths=source_relative \
//	       --kite_out=. --kite_opt=paths=source_relative greeter.proto
//
// Each input file with services yields <name>_kite.pb.go beside
// <name>.pb.go. Unary, server-streaming, client-streaming and
// bidirectional methods are supported; a method with
// `option idempotency_level = IDEMPOTENT` (or NO_SIDE_EFFECTS) is marked
// idempotent, so clients may retry it after the request left.
//
// Services are named on the wire by their full proto name: service
// Inventory of package eco.v1 is "eco.v1.Inventory" and its method Get
// "eco.v1.Inventory.Get" (gRPC's "/eco.v1.Inventory/Get"), so services of
// the same name in two packages can share a server (docs/PROTOCOL.md,
// "Method names").
package main

import (
	"flag"
	"fmt"
	"os"

	"google.golang.org/protobuf/compiler/protogen"

	"github.com/kiterpc/kite/internal/gen"
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("protoc-gen-kite", gen.ProtoVersion)
		return
	}
	if len(os.Args) == 2 && (os.Args[1] == "--help" || os.Args[1] == "-h") {
		fmt.Fprintln(os.Stderr, "protoc-gen-kite is a protoc plugin; run it through protoc with --kite_out=DIR.")
		return
	}
	var flags flag.FlagSet
	protogen.Options{ParamFunc: flags.Set}.Run(gen.GenerateProto)
}
