package spi

import (
	"context"
	"net"
)

// Transport opens byte streams. Transports stay compiled in: they sit on
// every byte of every call, so an out-of-process transport would cost a
// plugin round trip per read and write.
type Transport interface {
	// Name is the catalog name, e.g. "tcp", "unix", "tls".
	Name() string
	// Listen starts accepting on addr.
	Listen(ctx context.Context, addr string) (net.Listener, error)
	// Dial connects to addr, honouring ctx's deadline.
	Dial(ctx context.Context, addr string) (net.Conn, error)
}
