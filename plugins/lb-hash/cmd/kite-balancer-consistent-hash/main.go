// Command kite-balancer-consistent-hash serves the lb-hash plugin out of process.
// Declare it in kite.hcl with a plugin "balancer" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	consistenthash "github.com/kiterpc/kite/plugins/lb-hash"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindBalancer, consistenthash.Name) }
