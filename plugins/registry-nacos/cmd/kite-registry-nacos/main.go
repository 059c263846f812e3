// Command kite-registry-nacos serves the registry-nacos plugin out of process.
// Declare it in kite.hcl with a plugin "registry" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	nacos "github.com/kiterpc/kite/plugins/registry-nacos"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindRegistry, nacos.Name) }
