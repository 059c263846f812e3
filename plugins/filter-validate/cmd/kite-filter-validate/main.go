// Command kite-filter-validate serves the filter-validate plugin out of
// process. Declare it in kite.hcl with a plugin "filter" block giving its
// path and sha256 (see docs/PLUGINS.md).
//
// Out of process the filter sees each call's method, side, peer and
// metadata but never its request (values stay in the host), so it has
// nothing to validate and lets every call through; it says so in the
// log when built. Link the package into the host (the standard kite
// binary does) to validate requests.
package main

import (
	validatefilter "github.com/kiterpc/kite/plugins/filter-validate"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() {
	e, ok := spi.Default.Lookup(spi.KindFilter, validatefilter.Name)
	if !ok {
		panic("filter-validate is not registered")
	}
	build := e.New
	e.New = func(cfg spi.Config) (any, error) {
		f, err := build(cfg)
		if err == nil {
			plugin.Logger().Warn("filter validate served out of process sees no request values and validates nothing; compile it into the host instead")
		}
		return f, err
	}
	plugin.Serve(e)
}
