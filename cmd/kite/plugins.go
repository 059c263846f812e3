package main

// The standard plugin set: compiled-in implementations register
// themselves into spi.Default from init when linked here. Add a line per
// plugin package as it lands.
import (
	_ "github.com/kiterpc/kite/plugins/lb-random"
	_ "github.com/kiterpc/kite/plugins/lb-roundrobin"
	_ "github.com/kiterpc/kite/plugins/registry-static"
)
