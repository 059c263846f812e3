// Command kite-compressor-zstd serves the compress-zstd plugin out of process.
// Declare it in kite.hcl with a plugin "compressor" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	zstd "github.com/kiterpc/kite/plugins/compress-zstd"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindCompressor, zstd.Name) }
