// Command kite-codec-proto serves the codec-proto plugin out of process.
// Declare it in kite.hcl with a plugin "codec" block giving its path and
// sha256 (see docs/PLUGINS.md).
//
// Messages cross the bridge in typed canonical form (protojson packed as
// a google.protobuf.Any, see plugin.CanonicalCodec), and the plugin
// resolves their type among the messages linked into it: this binary
// knows the well-known types and descriptor.proto. To serve your own
// messages, copy this main and import your generated packages too.
package main

import (
	protocodec "github.com/kiterpc/kite/plugins/codec-proto"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"

	// Linked in so that their types resolve.
	_ "google.golang.org/protobuf/types/descriptorpb"
	_ "google.golang.org/protobuf/types/known/anypb"
	_ "google.golang.org/protobuf/types/known/durationpb"
	_ "google.golang.org/protobuf/types/known/emptypb"
	_ "google.golang.org/protobuf/types/known/fieldmaskpb"
	_ "google.golang.org/protobuf/types/known/structpb"
	_ "google.golang.org/protobuf/types/known/timestamppb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"
)

func main() { plugin.ServeDefault(spi.KindCodec, protocodec.Name) }
