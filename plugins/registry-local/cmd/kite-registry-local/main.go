// Command kite-registry-local serves the registry-local plugin out of process.
// Declare it in kite.hcl with a plugin "registry" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	local "github.com/kiterpc/kite/plugins/registry-local"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindRegistry, local.Name) }
