// Command kite-compressor-s2 serves the compress-s2 plugin out of process.
// Declare it in kite.hcl with a plugin "compressor" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	s2 "github.com/kiterpc/kite/plugins/compress-s2"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindCompressor, s2.Name) }
