// Command kite-registry-zk serves the registry-zk plugin out of process.
// Declare it in kite.hcl with a plugin "registry" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	zookeeper "github.com/kiterpc/kite/plugins/registry-zk"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindRegistry, zookeeper.Name) }
