// Command testplugin serves one of spi/plugin's test implementations,
// chosen by its first argument (registry, filter, balancer, codec).
package main

import (
	"fmt"
	"os"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
	"github.com/kiterpc/kite/spi/plugin/internal/testplugins"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testplugin registry|filter|balancer|codec")
		os.Exit(2)
	}
	e, ok := testplugins.Lookup(spi.Kind(os.Args[1]))
	if !ok {
		fmt.Fprintf(os.Stderr, "testplugin: no %s\n", os.Args[1])
		os.Exit(2)
	}
	plugin.Serve(e)
}
