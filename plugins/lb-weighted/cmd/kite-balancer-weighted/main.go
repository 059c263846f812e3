// Command kite-balancer-weighted serves the lb-weighted plugin out of process.
// Declare it in kite.hcl with a plugin "balancer" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	weighted "github.com/kiterpc/kite/plugins/lb-weighted"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindBalancer, weighted.Name) }
