// Command kite-balancer-p2c serves the lb-p2c plugin out of process.
// Declare it in kite.hcl with a plugin "balancer" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	p2c "github.com/kiterpc/kite/plugins/lb-p2c"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindBalancer, p2c.Name) }
