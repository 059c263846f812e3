// Command goheader serves the Go port of the Python header filter out of
// process, for tests/polyglot's benchmarks.
package main

import (
	"github.com/kiterpc/kite/spi/plugin"
	"github.com/kiterpc/kite/tests/polyglot/internal/goheader"
)

func main() { plugin.Serve(goheader.Entry) }
