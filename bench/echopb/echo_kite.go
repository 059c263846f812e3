package echopb

import (
	"context"

	"github.com/kiterpc/kite/core"
)

// This file is written by hand in the shape a Kite code generator emits:
// a ServiceDesc whose handlers call the implementation directly (no
// reflection per call) and a typed client. It lives beside the protoc
// output so the benchmark measures Kite the way generated code uses it.

// KiteEchoServer is the Kite server side of service Echo.
type KiteEchoServer interface {
	Echo(ctx context.Context, in *Payload) (*Payload, error)
	Stream(ctx context.Context, st *core.Stream) error
}

// KiteEchoServiceDesc describes service Echo for core.Server.RegisterService.
var KiteEchoServiceDesc = core.ServiceDesc{
	Name: "Echo",
	Methods: []core.MethodDesc{{
		Name:       "Echo",
		NewRequest: func() any { return new(Payload) },
		Handler: func(ctx context.Context, srv any, req any) (any, error) {
			return srv.(KiteEchoServer).Echo(ctx, req.(*Payload))
		},
		Idempotent: true,
	}},
	Streams: []core.StreamDesc{{
		Name: "Stream",
		Handler: func(ctx context.Context, srv any, st *core.Stream) error {
			return srv.(KiteEchoServer).Stream(ctx, st)
		},
	}},
}

// RegisterKiteEcho registers impl as service Echo on s.
func RegisterKiteEcho(s *core.Server, impl KiteEchoServer) error {
	return s.RegisterService(&KiteEchoServiceDesc, impl)
}

// KiteEchoClient is a typed client of service Echo.
type KiteEchoClient struct{ C *core.Client }

// Echo calls Echo.Echo.
func (c KiteEchoClient) Echo(ctx context.Context, in *Payload) (*Payload, error) {
	out := new(Payload)
	if err := c.C.Call(ctx, "Echo.Echo", in, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Stream opens Echo.Stream.
func (c KiteEchoClient) Stream(ctx context.Context) (*core.Stream, error) {
	return c.C.Stream(ctx, "Echo.Stream")
}
