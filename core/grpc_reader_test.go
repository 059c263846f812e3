package core_test

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	"github.com/kiterpc/kite/spi"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
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
	waitZero(t, "InFlight after the Goexit", srv.InFlight)
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

// TestGRPCCallsLeftAtABrokenFrameEnd: a complete call the reader
// collected but had not run yet when a broken frame (DATA on stream 0, in
// the same write) ended the connection still ends and gives its
// admission back; the server serves on.
func TestGRPCCallsLeftAtABrokenFrameEnd(t *testing.T) {
	srv, addr, _ := startHoldServer(t, core.ServerOptions{}, core.GRPCOptions{}, 1)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var out bytes.Buffer
	out.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&out, nil)
	fr.AllowIllegalWrites = true
	_ = fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":path", Value: greeterPath + "SayHello"},
		{Name: ":authority", Value: "kite"}, {Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"}} {
		_ = enc.WriteField(f)
	}
	msg, err := proto.Marshal(&greeterpb.HelloRequest{Name: "left"})
	if err != nil {
		t.Fatal(err)
	}
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	_ = fr.WriteData(1, true, append([]byte{0, 0, 0, 0, byte(len(msg))}, msg...))
	_ = fr.WriteData(0, false, []byte("broken"))
	if _, err := c.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	// The server answers the broken frame with GOAWAY and closes.
	rf := http2.NewFramer(nil, c)
	var goaway *http2.GoAwayFrame
	for goaway == nil {
		f, err := rf.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY for DATA on stream 0: %v", err)
		}
		goaway, _ = f.(*http2.GoAwayFrame)
	}
	if goaway.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("GOAWAY %v, want PROTOCOL_ERROR", goaway.ErrCode)
	}
	waitZero(t, "InFlight after the connection broke", srv.InFlight)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hello(ctx, dialGRPC(t, addr), "after"); err != nil {
		t.Fatalf("a call after the broken connection: %v", err)
	}
}
