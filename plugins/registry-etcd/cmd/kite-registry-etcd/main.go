// Command kite-registry-etcd serves the registry-etcd plugin out of process.
// Declare it in kite.hcl with a plugin "registry" block giving its path and
// sha256 (see docs/PLUGINS.md).
package main

import (
	etcd "github.com/kiterpc/kite/plugins/registry-etcd"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

func main() { plugin.ServeDefault(spi.KindRegistry, etcd.Name) }
