// Package systems adapts each RPC system under test to one shape: a
// server that echoes on a listener, and a client that places echo calls
// (or runs echo streams) from many goroutines.
package systems

import (
	"context"
	"fmt"
	"net"
	"sort"
)

// Server is a running echo server.
type Server interface {
	// Close stops serving and releases the listener.
	Close() error
}

// Client places echo calls against one server address.
type Client interface {
	// Echo sends payload from caller worker (0 ≤ worker < conc) and
	// returns the length of the answer.
	Echo(ctx context.Context, worker int, payload []byte) (int, error)
	// Close releases connections.
	Close() error
}

// Stream is one bidirectional echo stream.
type Stream interface {
	Send(payload []byte) error
	// Recv waits for the next echoed message and returns its length.
	Recv() (int, error)
	// CloseSend half-closes; Close aborts and releases the stream.
	CloseSend() error
	Close()
}

// Streamer is implemented by clients of systems with streams.
type Streamer interface {
	OpenStream(ctx context.Context) (Stream, error)
}

// System is one contender.
type System struct {
	Name string
	Doc  string
	// Serve starts an echo server on ln.
	Serve func(ln net.Listener) (Server, error)
	// Dial returns a client for addr that will be used by conc callers.
	Dial func(addr string, conc int) (Client, error)
}

var all = map[string]System{}

func register(s System) {
	if _, dup := all[s.Name]; dup {
		panic("systems: duplicate " + s.Name)
	}
	all[s.Name] = s
}

// Lookup returns the named system.
func Lookup(name string) (System, error) {
	s, ok := all[name]
	if !ok {
		return System{}, fmt.Errorf("unknown system %q (known: %v)", name, Names())
	}
	return s, nil
}

// Names lists the registered systems in presentation order.
func Names() []string {
	out := make([]string, 0, len(all))
	for n := range all {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return order(out[i]) < order(out[j]) })
	return out
}

// Order is the presentation order of the systems in tables and charts.
var Order = []string{"kite", "kite-default", "kite-json", "kite-zstd", "kite-tls", "grpc", "drpc", "netrpc", "raw"}

func order(name string) int {
	for i, n := range Order {
		if n == name {
			return i
		}
	}
	return len(Order)
}
