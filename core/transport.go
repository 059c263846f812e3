package core

import (
	"context"
	"net"
	"strings"

	"github.com/kiterpc/kite/spi"
)

// TCP is the default transport. Nagle's algorithm is disabled: the batching
// writer already coalesces frames, and Nagle would add latency to the
// last frame of every batch.
type TCP struct{}

// Name implements spi.Transport.
func (TCP) Name() string { return "tcp" }

// Listen implements spi.Transport.
func (TCP) Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}

// Dial implements spi.Transport.
func (TCP) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return c, nil
}

// Unix is the Unix-domain socket transport; addresses are socket paths,
// optionally written "unix:///path" or "unix:/path".
type Unix struct{}

// Name implements spi.Transport.
func (Unix) Name() string { return "unix" }

// Listen implements spi.Transport.
func (Unix) Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "unix", unixPath(addr))
}

// Dial implements spi.Transport.
func (Unix) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", unixPath(addr))
}

func unixPath(addr string) string {
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		return p
	}
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		return p
	}
	return addr
}

// transportFor picks the transport for an address: "unix:" addresses use
// Unix, everything else the given default (TCP when nil).
func transportFor(addr string, def spi.Transport) spi.Transport {
	if strings.HasPrefix(addr, "unix:") {
		return Unix{}
	}
	if def == nil {
		return TCP{}
	}
	return def
}

func init() {
	spi.Register(spi.Entry{Kind: spi.KindTransport, Name: "tcp", Version: "1", Doc: "TCP (default)",
		New: func(spi.Config) (any, error) { return TCP{}, nil }})
	spi.Register(spi.Entry{Kind: spi.KindTransport, Name: "unix", Version: "1", Doc: "Unix-domain socket",
		New: func(spi.Config) (any, error) { return Unix{}, nil }})
	spi.Register(spi.Entry{Kind: spi.KindCodec, Name: "raw", Version: "1", Doc: "bytes passed through",
		New: func(spi.Config) (any, error) { return RawCodec{}, nil }})
}
