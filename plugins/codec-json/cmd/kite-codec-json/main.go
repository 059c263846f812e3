// Command kite-codec-json serves the codec-json plugin out of process.
// Declare it in kite.hcl with a plugin "codec" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	jsoncodec "github.com/kiterpc/kite/plugins/codec-json"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindCodec, jsoncodec.Name) }
