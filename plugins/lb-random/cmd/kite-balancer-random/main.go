// Command kite-balancer-random serves the lb-random plugin out of process.
// Declare it in kite.hcl with a plugin "balancer" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	random "github.com/kiterpc/kite/plugins/lb-random"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindBalancer, random.Name) }
