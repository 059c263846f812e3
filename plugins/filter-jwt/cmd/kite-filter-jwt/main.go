// Command kite-filter-jwt serves the filter-jwt plugin out of process.
// Declare it in kite.hcl with a plugin "filter" block giving its path and
// sha256 (see docs/PLUGINS.md). The plugin sees each call's method, side,
// peer and metadata (the token), never its request or response values;
// handlers reach the verified claims through kite-jwt-claims metadata
// when the block sets claims_metadata = true.
package main

import (
	jwtfilter "github.com/kiterpc/kite/plugins/filter-jwt"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindFilter, jwtfilter.Name) }
