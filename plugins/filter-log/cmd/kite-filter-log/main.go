// Command kite-filter-log serves the filter-log plugin out of process.
// Declare it in kite.hcl with a plugin "filter" block giving its path and
// sha256 (see docs/PLUGINS.md). The plugin sees each call's method, side,
// peer and metadata, never its request or response values.
package main

import (
	_ "github.com/kiterpc/kite/plugins/filter-log" // registers "log" in spi.Default
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindFilter, "log") }
