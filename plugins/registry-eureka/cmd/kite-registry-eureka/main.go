// Command kite-registry-eureka serves the registry-eureka plugin out of
// process. Declare it in kite.hcl with a plugin "registry" block giving
// its path and sha256 (see docs/PLUGINS.md).
package main

import (
	eureka "github.com/kiterpc/kite/plugins/registry-eureka"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindRegistry, eureka.Name) }
