// Command kite-compressor-gzip serves the compress-gzip plugin out of process.
// Declare it in kite.hcl with a plugin "compressor" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	gzip "github.com/kiterpc/kite/plugins/compress-gzip"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindCompressor, gzip.Name) }
