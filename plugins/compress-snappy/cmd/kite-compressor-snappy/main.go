// Command kite-compressor-snappy serves the compress-snappy plugin out of process.
// Declare it in kite.hcl with a plugin "compressor" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	snappy "github.com/kiterpc/kite/plugins/compress-snappy"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindCompressor, snappy.Name) }
