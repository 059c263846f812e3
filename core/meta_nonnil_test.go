package core

import (
	"context"
	"testing"

	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
)

// stampFilter writes a key into every call's metadata, as an auth or
// tracing filter does.
type stampFilter struct{}

func (stampFilter) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		call.Meta.Set("x-stamp", "kite")
		return next(ctx, call)
	}
}

// A compiled-in client filter may write call.Meta although the caller set
// no metadata (out of process it is never nil; compiled in it was, and a
// filter that passed spitest both ways crashed the client).
func TestClientFilterGetsMetadataWithoutCallerMetadata(t *testing.T) {
	seen := make(chan string, 4)
	f := startServer(t, ServerOptions{Filters: []spi.Filter{filterFunc(func(next spi.Invoker) spi.Invoker {
		return func(ctx context.Context, call *spi.Call) error {
			seen <- call.Meta.Get("x-stamp")
			return next(ctx, call)
		}
	})}}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}, Filters: []spi.Filter{stampFilter{}}})
	ctx := context.Background()
	require.NoError(t, c.Call(ctx, "Echo.Echo", &EchoReq{Text: "x"}, &EchoResp{}))
	require.Equal(t, "kite", <-seen)
	require.NoError(t, c.OneWay(ctx, "Echo.Echo", &EchoReq{Text: "x"}))
	require.Equal(t, "kite", <-seen)
	// A prepared call without Meta, through Invoke.
	require.NoError(t, c.Invoke(ctx, &spi.Call{Side: spi.ClientSide, Method: "Echo.Echo", Request: &EchoReq{}, Response: &EchoResp{}}))
	require.Equal(t, "kite", <-seen)
}

type filterFunc func(spi.Invoker) spi.Invoker

func (f filterFunc) Wrap(next spi.Invoker) spi.Invoker { return f(next) }
