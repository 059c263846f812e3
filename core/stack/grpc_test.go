package stack_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	_ "github.com/kiterpc/kite/plugins/codec-proto"
)

// TestGRPCBlocksWireServerAndClient: a server block's grpc block makes
// the server answer gRPC health and reflection on its Kite port; a client
// block's grpc block makes the client call a plain grpc-go server.
func TestGRPCBlocksWireServerAndClient(t *testing.T) {
	// A plain grpc-go server with Greeter.SayHello, registered by hand.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer()
	gs.RegisterService(&grpc.ServiceDesc{
		ServiceName: "kite.examples.greeter.Greeter", HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "SayHello", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(greeterpb.HelloRequest)
			if err := dec(in); err != nil {
				return nil, err
			}
			return &greeterpb.HelloReply{Message: "grpc-go says hi to " + in.GetName()}, nil
		}}},
	}, struct{}{})
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()

	dir := t.TempDir()
	path := writeHCL(t, dir, "kite.hcl", `
server "echo" {
  listen = "127.0.0.1:0"
  codec  = "json"
  grpc {}
}
client "greeter" {
  target = "`+ln.Addr().String()+`"
  codec  = "proto"
  grpc {
    package = "kite.examples.greeter"
  }
}
`)
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()

	in, stop := servingWith(t, st, "echo", func(s *core.Server) error {
		assert.True(t, s.GRPCEnabled())
		return s.Register("Echo", &echo{name: "a"})
	})
	cc, err := grpc.NewClient("passthrough:///"+in.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hr, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "Echo"})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, hr.GetStatus())
	rs, err := rpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	require.NoError(t, err)
	require.NoError(t, rs.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}))
	rr, err := rs.Recv()
	require.NoError(t, err)
	var names []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	assert.Contains(t, strings.Join(names, " "), "grpc.health.v1.Health")
	assert.Contains(t, names, "Echo")
	require.NoError(t, rs.CloseSend())

	c, err := st.Client("greeter")
	require.NoError(t, err)
	r, err := greeterpb.NewGreeterClient(c).SayHello(ctx, &greeterpb.HelloRequest{Name: "kite"})
	require.NoError(t, err)
	assert.Equal(t, "grpc-go says hi to kite", r.GetMessage())
	require.NoError(t, stop())
}
