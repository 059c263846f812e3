// Command kite-registry-consul serves the registry-consul plugin out of
// process. Declare it in kite.hcl with a plugin "registry" block giving
// its path and sha256 (see docs/PLUGINS.md).
package main

import (
	consul "github.com/kiterpc/kite/plugins/registry-consul"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindRegistry, consul.Name) }
