// Command kite-balancer-round-robin serves the lb-roundrobin plugin out of process.
// Declare it in kite.hcl with a plugin "balancer" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	roundrobin "github.com/kiterpc/kite/plugins/lb-roundrobin"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindBalancer, roundrobin.Name) }
