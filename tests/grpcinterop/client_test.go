package grpcinterop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	codecproto "github.com/kiterpc/kite/plugins/codec-proto"
	lbp2c "github.com/kiterpc/kite/plugins/lb-p2c"
	registrylocal "github.com/kiterpc/kite/plugins/registry-local"
	"github.com/kiterpc/kite/spi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// grpcGreeter is a plain grpc-go server's Greeter, registered by hand
// (no generated grpc stubs needed): SayHello, StreamGreetings, Chat.
type grpcGreeter struct {
	name  string
	calls atomic.Int64
}

func (g *grpcGreeter) desc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "kite.examples.greeter.Greeter",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "SayHello",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := new(greeterpb.HelloRequest)
				if err := dec(in); err != nil {
					return nil, err
				}
				g.calls.Add(1)
				switch in.GetName() {
				case "":
					return nil, status.Error(codes.InvalidArgument, "a name is required")
				case "slow":
					<-ctx.Done()
					return nil, status.FromContextError(ctx.Err()).Err()
				}
				if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("x-tenant")) == 1 {
					_ = grpc.SetTrailer(ctx, metadata.Pairs("x-tenant-echo", md.Get("x-tenant")[0], "x-server", g.name))
				}
				return &greeterpb.HelloReply{Message: "Hello, " + in.GetName() + "!", Seq: 1}, nil
			},
		}},
		Streams: []grpc.StreamDesc{{
			StreamName:    "StreamGreetings",
			ServerStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error {
				in := new(greeterpb.HelloRequest)
				if err := ss.RecvMsg(in); err != nil {
					return err
				}
				for i := int32(1); i <= in.GetCount(); i++ {
					if err := ss.SendMsg(&greeterpb.HelloReply{Message: in.GetName(), Seq: i}); err != nil {
						return err
					}
				}
				return nil
			},
		}, {
			StreamName:    "Chat",
			ServerStreams: true, ClientStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error {
				for seq := int32(1); ; seq++ {
					in := new(greeterpb.HelloRequest)
					err := ss.RecvMsg(in)
					if err == io.EOF {
						return nil
					}
					if err != nil {
						return err
					}
					if err := ss.SendMsg(&greeterpb.HelloReply{Message: "Hi, " + in.GetName() + "!", Seq: seq}); err != nil {
						return err
					}
				}
			},
		}},
	}
}

func startGRPC(t *testing.T, name string) (*grpcGreeter, *grpc.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &grpcGreeter{name: name}
	gs := grpc.NewServer()
	gs.RegisterService(g.desc(), g)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return g, gs, ln.Addr().String()
}

// TestKiteClientCallsGRPCServersThroughRegistry: two grpc-go servers in
// a registry; a Kite client with the p2c balancer, retries, breakers and
// a filter calls them through the grpc transport.
func TestKiteClientCallsGRPCServersThroughRegistry(t *testing.T) {
	ga, gsA, addrA := startGRPC(t, "a")
	gb, _, addrB := startGRPC(t, "b")

	reg, err := registrylocal.New(registrylocal.Config{Dir: t.TempDir(), PollInterval: "20ms"})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, a := range []string{addrA, addrB} {
		if err := reg.Register(ctx, spi.Instance{Service: "greeter", Addr: a}); err != nil {
			t.Fatal(err)
		}
	}
	var filtered atomic.Int64
	counting := spi.FilterFunc(func(next spi.Invoker) spi.Invoker {
		return func(ctx context.Context, call *spi.Call) error {
			filtered.Add(1)
			return next(ctx, call)
		}
	})
	kc, err := core.NewClient(core.ClientOptions{
		Service:   "greeter",
		Registry:  reg,
		Balancer:  lbp2c.New(lbp2c.Options{}),
		Transport: &core.GRPCTransport{Package: "kite.examples.greeter"},
		Codec:     codecproto.New(),
		Filters:   []spi.Filter{counting},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	gc := greeterpb.NewGreeterClient(kc)

	// Unary calls spread over both servers.
	for i := range 40 {
		r, err := gc.SayHello(ctx, &greeterpb.HelloRequest{Name: fmt.Sprint(i)})
		if err != nil || r.GetMessage() != fmt.Sprintf("Hello, %d!", i) {
			t.Fatalf("call %d: %v %v", i, r, err)
		}
	}
	if ga.calls.Load() == 0 || gb.calls.Load() == 0 {
		t.Fatalf("the balancer used one server only: a=%d b=%d", ga.calls.Load(), gb.calls.Load())
	}
	if filtered.Load() < 40 {
		t.Fatalf("the filter saw %d calls", filtered.Load())
	}

	// A typed error keeps its code and message.
	_, err = gc.SayHello(ctx, &greeterpb.HelloRequest{})
	var se *spi.Error
	if !errors.As(err, &se) || se.Code != spi.InvalidArgument || se.Message != "a name is required" {
		t.Fatalf("want InvalidArgument, got %v", err)
	}

	// Metadata both ways: request metadata becomes headers, the server's
	// trailer the call's trailer.
	md := &spi.Metadata{}
	md.Set("x-tenant", "acme")
	call := &spi.Call{Side: spi.ClientSide, Method: "Greeter.SayHello", Request: &greeterpb.HelloRequest{Name: "md"}, Response: &greeterpb.HelloReply{}, Meta: md, Trailer: &spi.Metadata{}}
	if err := kc.Invoke(ctx, call); err != nil {
		t.Fatal(err)
	}
	if call.Trailer.Get("x-tenant-echo") != "acme" || call.Trailer.Get("x-server") == "" {
		t.Fatalf("trailer %v", call.Trailer)
	}

	// The deadline travels as grpc-timeout.
	dctx, dcancel := context.WithTimeout(ctx, 150*time.Millisecond)
	_, err = gc.SayHello(dctx, &greeterpb.HelloRequest{Name: "slow"})
	dcancel()
	if !errors.As(err, &se) || se.Code != spi.DeadlineExceeded {
		t.Fatalf("want DeadlineExceeded, got %v", err)
	}

	// Server streaming, beyond the Kite stream window.
	ss, err := gc.StreamGreetings(ctx, &greeterpb.HelloRequest{Name: "s", Count: 200})
	if err != nil {
		t.Fatal(err)
	}
	for i := int32(1); ; i++ {
		r, err := ss.Recv()
		if err == io.EOF {
			if i != 201 {
				t.Fatalf("stream ended after %d", i-1)
			}
			break
		}
		if err != nil || r.GetSeq() != i {
			t.Fatalf("reply %d: %v %v", i, r, err)
		}
	}

	// Bidirectional.
	chat, err := gc.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := int32(1); i <= 30; i++ {
		if err := chat.Send(&greeterpb.HelloRequest{Name: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		r, err := chat.Recv()
		if err != nil || r.GetSeq() != i || r.GetMessage() != fmt.Sprintf("Hi, %d!", i) {
			t.Fatalf("chat %d: %v %v", i, r, err)
		}
	}
	_ = chat.CloseSend()
	if _, err := chat.Recv(); err != io.EOF {
		t.Fatalf("chat end: %v", err)
	}

	// One server goes away (GOAWAY, then closed): calls keep succeeding on
	// the other without the caller seeing a failure.
	gsA.GracefulStop()
	before := gb.calls.Load()
	for i := range 30 {
		if _, err := gc.SayHello(ctx, &greeterpb.HelloRequest{Name: fmt.Sprint(i)}); err != nil {
			t.Fatalf("after server a stopped, call %d: %v", i, err)
		}
	}
	if gb.calls.Load()-before < 30 {
		t.Fatalf("server b took %d of 30 calls after a stopped", gb.calls.Load()-before)
	}
}
