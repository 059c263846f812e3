// Command kite-codec-hessian serves the codec-hessian plugin out of
// process. Declare it in kite.hcl with a plugin "codec" block giving its
// path and sha256 (see docs/PLUGINS.md).
//
// Values cross the bridge in canonical (JSON) form, so the plugin sees
// maps, lists and scalars, not the host's Go types: it writes Hessian
// maps, except maps naming a Java class under "_class", which it writes
// as objects of that class; Java objects it reads arrive as maps with
// "_class" set. Link the package into the host for Go structs bound to
// Java classes.
package main

import (
	hessiancodec "github.com/kiterpc/kite/plugins/codec-hessian"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindCodec, hessiancodec.Name) }
