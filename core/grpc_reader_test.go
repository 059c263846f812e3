package core_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	"github.com/kiterpc/kite/spi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestGRPCReaderHandsOffBlockedCalls: the connection's reader runs
// unary calls itself, so calls that block must not hold up the
// connection. 32 calls on one grpc-go connection each block in the
// handler until all 32 are there at once (they can only meet if the
// reading was handed on while the first ones blocked); meanwhile a quick
// call on the same connection is answered; then all 32 succeed.
func TestGRPCReaderHandsOffBlockedCalls(t *testing.T) {
	const n = 32
	_, addr, g := startHoldServer(t, core.ServerOptions{}, core.GRPCOptions{}, n)
	cc := dialGRPC(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hello(ctx, cc, "warm-up"); err != nil { // one connection for all
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- hello(ctx, cc, "hold")
		}()
	}
	waitHeld(t, g, n)
	if err := hello(ctx, cc, "quick"); err != nil {
		t.Fatalf("a quick call while %d calls block on the same connection: %v", n, err)
	}
	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("held call: %v", err)
		}
	}
}

// goexitGreeter's SayHello calls runtime.Goexit for the name "goexit"
// (as a handler calling t.FailNow would).
type goexitGreeter struct{ grpcGreeter }

func (g *goexitGreeter) SayHello(ctx context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	if req.GetName() == "goexit" {
		runtime.Goexit()
	}
	return &greeterpb.HelloReply{Message: "Hello " + req.GetName()}, nil
}

// TestGRPCHandlerGoexitOnReader: a handler that ends its goroutine with
// runtime.Goexit while the connection's reader runs it ends that
// connection (its client sees UNAVAILABLE, not a hang); the server goes
// on serving, and Close leaves no goroutine behind (goleak).
func TestGRPCHandlerGoexitOnReader(t *testing.T) {
	srv, err := core.NewServer(core.ServerOptions{Codecs: []spi.Codec{protoCodec{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.EnableGRPC(core.GRPCOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := greeterpb.RegisterGreeterServer(srv, &goexitGreeter{}); err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	a := dialGRPC(t, addr)
	err = hello(ctx, a, "goexit")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("call whose handler called Goexit: %v, want UNAVAILABLE", err)
	}
	b := dialGRPC(t, addr)
	if err := hello(ctx, b, "next"); err != nil {
		t.Fatalf("another connection after a handler's Goexit: %v", err)
	}
	// The first client reconnects and is served too.
	err = a.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: "again"}, &greeterpb.HelloReply{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("the first client again: %v", err)
	}
}
