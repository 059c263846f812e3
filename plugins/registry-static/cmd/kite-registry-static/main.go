// Command kite-registry-static serves the registry-static plugin out of process.
// Declare it in kite.hcl with a plugin "registry" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	static "github.com/kiterpc/kite/plugins/registry-static"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindRegistry, static.Name) }
