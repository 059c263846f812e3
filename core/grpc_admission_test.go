package core_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	"github.com/kiterpc/kite/spi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// holdGreeter holds every SayHello whose name starts with "hold" until
// release is closed, counting the calls it holds.
type holdGreeter struct {
	grpcGreeter
	held    atomic.Int64
	heldSig chan struct{} // one token per held call
	release chan struct{}
}

func (g *holdGreeter) SayHello(ctx context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	if strings.HasPrefix(req.GetName(), "hold") {
		g.held.Add(1)
		g.heldSig <- struct{}{}
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, spi.WrapError(spi.Canceled, ctx.Err(), "canceled")
		}
	}
	return &greeterpb.HelloReply{Message: "Hello!"}, nil
}

// startHoldServer runs a Kite server with gRPC on and the holdGreeter.
func startHoldServer(t *testing.T, opts core.ServerOptions, gopts core.GRPCOptions, holds int) (*core.Server, string, *holdGreeter) {
	t.Helper()
	opts.Codecs = append(opts.Codecs, protoCodec{})
	srv, err := core.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.EnableGRPC(gopts); err != nil {
		t.Fatal(err)
	}
	g := &holdGreeter{heldSig: make(chan struct{}, holds), release: make(chan struct{})}
	if err := greeterpb.RegisterGreeterServer(srv, g); err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv, ln.Addr().String(), g
}

// dialGRPCFrom dials addr from the local address from (another loopback
// IP is another peer to the server).
func dialGRPCFrom(t *testing.T, addr, from string) *grpc.ClientConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(8<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// hello calls SayHello over a grpc-go connection.
func hello(ctx context.Context, cc *grpc.ClientConn, name string) error {
	return cc.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: name}, &greeterpb.HelloReply{})
}

func waitHeld(t *testing.T, g *holdGreeter, n int) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-g.heldSig:
		case <-timeout:
			t.Fatalf("%d of %d calls reached the handler", i, n)
		}
	}
}

func waitZero(t *testing.T, what string, f func() int64) {
	t.Helper()
	waitCount(t, what, f, 0)
}

// waitCount waits for f to settle at want: a call's admission is given
// back after its answer is flushed, so the client can see the answer a
// moment before the server's count drops.
func waitCount(t *testing.T, what string, f func() int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s stays at %d, want %d", what, f(), want)
		}
		time.Sleep(5 * time.Millisecond) // no signal for "the last call's admission was given back"
	}
}

// TestGRPCPeerShareAdmission: gRPC calls take the server's per-peer
// slots (max_peer_share): a grpc-go client holding its share gets
// RESOURCE_EXHAUSTED for one more call, while another peer (another
// loopback address) is still served; the slots come back after.
func TestGRPCPeerShareAdmission(t *testing.T) {
	// 400 x 0.25: a peer may hold 100 calls.
	const share = 100
	srv, addr, g := startHoldServer(t, core.ServerOptions{MaxConcurrency: 400, MaxPeerShare: 0.25}, core.GRPCOptions{}, share+1)
	a := dialGRPCFrom(t, addr, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, share)
	for i := 0; i < share; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := hello(ctx, a, "hold")
			errs <- err
		}()
	}
	waitHeld(t, g, share)

	err := hello(ctx, a, "hold-one-more")
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "max_peer_share") {
		t.Fatalf("call beyond the peer's share: %v, want ResourceExhausted naming max_peer_share", err)
	}
	if g.held.Load() != share {
		t.Fatalf("the refused call reached the handler (%d held)", g.held.Load())
	}
	// Another peer is still admitted while the first holds its share.
	b := dialGRPCFrom(t, addr, "127.0.0.2")
	if err := hello(ctx, b, "bob"); err != nil {
		t.Fatalf("another peer refused while the first holds its share: %v", err)
	}
	// bob's slot is given back just after his answer left: the server
	// settles at the first peer's share.
	waitCount(t, "InFlight with the first peer's share held", srv.InFlight, share)

	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("held call: %v", err)
		}
	}
	waitZero(t, "InFlight", srv.InFlight)
	if err := hello(ctx, a, "again"); err != nil {
		t.Fatalf("the first peer after its calls ended: %v", err)
	}
}

// TestGRPCMaxConcurrencyAnswersResourceExhausted: max_concurrency bounds
// gRPC calls, answered with a RESOURCE_EXHAUSTED status in trailers.
func TestGRPCMaxConcurrencyAnswersResourceExhausted(t *testing.T) {
	srv, addr, g := startHoldServer(t, core.ServerOptions{MaxConcurrency: 3}, core.GRPCOptions{}, 3)
	c := dialGRPCFrom(t, addr, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = hello(ctx, c, "hold")
		}()
	}
	waitHeld(t, g, 3)
	err := hello(ctx, c, "x")
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "max_concurrency") {
		t.Fatalf("call beyond max_concurrency: %v", err)
	}
	close(g.release)
	wg.Wait()
	waitZero(t, "InFlight", srv.InFlight)
	if err := hello(ctx, c, "x"); err != nil {
		t.Fatalf("after the held calls ended: %v", err)
	}
}

// TestGRPCBodyBudget: gRPC request messages are charged to the server's
// body budget (body_memory and the peer's share of it) from their
// prefix, before the buffer is made: a message over the budget, or one
// that does not fit beside the requests in progress, is answered
// RESOURCE_EXHAUSTED; the connection stays usable and the budget is
// all given back.
func TestGRPCBodyBudget(t *testing.T) {
	// 256 KiB budget, a peer may hold half: 128 KiB. Messages up to 1 MiB
	// pass the size limit, so it is the budget that refuses them.
	srv, addr, g := startHoldServer(t, core.ServerOptions{BodyMemory: 256 << 10, MaxPeerShare: 0.5}, core.GRPCOptions{MaxMessage: 1 << 20}, 2)
	c := dialGRPCFrom(t, addr, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	err := hello(ctx, c, strings.Repeat("x", 200<<10))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "body memory") {
		t.Fatalf("a 200 KiB message against a 128 KiB share: %v, want ResourceExhausted naming the body memory", err)
	}
	if g.held.Load() != 0 {
		t.Fatal("the refused message reached the handler")
	}

	// Two 50 KiB requests in progress hold 100 KiB; a third does not fit.
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hello(ctx, c, "hold"+strings.Repeat("y", 50<<10)); err != nil {
				t.Errorf("held call: %v", err)
			}
		}()
	}
	waitHeld(t, g, 2)
	if m := srv.BodyMemory(); m < 100<<10 {
		t.Fatalf("body memory %d with two 50 KiB requests in progress", m)
	}
	err = hello(ctx, c, strings.Repeat("z", 50<<10))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "body memory") {
		t.Fatalf("a third 50 KiB request beside two in progress: %v, want ResourceExhausted", err)
	}
	close(g.release)
	wg.Wait()
	waitZero(t, "BodyMemory", srv.BodyMemory)
	waitZero(t, "InFlight", srv.InFlight)

	// The same connection still serves, a large request included.
	if err := hello(ctx, c, strings.Repeat("w", 100<<10)); err != nil {
		t.Fatalf("after the refusals: %v", err)
	}
	waitZero(t, "BodyMemory", srv.BodyMemory)
}

// TestGRPCStreamBudgetAndIdle: a client stream's unread messages are
// charged to the body budget until the handler reads them (a stream
// over its peer's share ends RESOURCE_EXHAUSTED), and a stream on which
// nothing moves for stream_idle_timeout ends DEADLINE_EXCEEDED; the
// connection serves on, and nothing stays charged.
func TestGRPCStreamBudgetAndIdle(t *testing.T) {
	srv, addr, _ := startHoldServer(t, core.ServerOptions{BodyMemory: 256 << 10, MaxPeerShare: 0.5, StreamIdleTimeout: 300 * time.Millisecond},
		core.GRPCOptions{MaxMessage: 1 << 20}, 1)
	c := dialGRPCFrom(t, addr, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Idle: the client opens Chat and sends nothing.
	st, err := c.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, greeterPath+"Chat")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = st.RecvMsg(&greeterpb.HelloReply{})
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "stream_idle_timeout") {
		t.Fatalf("idle stream: %v, want DeadlineExceeded naming stream_idle_timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("idle stream ended after %v", d)
	}

	// A message over the peer's share of the budget ends the stream.
	st2, err := c.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, greeterPath+"RecordNames")
	if err != nil {
		t.Fatal(err)
	}
	_ = st2.SendMsg(&greeterpb.HelloRequest{Name: strings.Repeat("b", 200<<10)})
	_ = st2.CloseSend()
	err = st2.RecvMsg(&greeterpb.NameSummary{})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "body memory") {
		t.Fatalf("stream message over the budget: %v, want ResourceExhausted", err)
	}

	// The connection serves on.
	st3, err := c.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, greeterPath+"RecordNames")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := st3.SendMsg(&greeterpb.HelloRequest{Name: strings.Repeat("c", 4<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	_ = st3.CloseSend()
	sum := &greeterpb.NameSummary{}
	if err := st3.RecvMsg(sum); err != nil || sum.GetCount() != 20 {
		t.Fatalf("stream after the refusals: %v, %v", sum, err)
	}
	waitZero(t, "BodyMemory", srv.BodyMemory)
	waitZero(t, "InFlight", srv.InFlight)
}

// TestGRPCResetStorm: a grpc-go client runs quick calls next to calls
// it abandons at a 1 ms deadline while the handler holds them (RST_STREAM
// arriving while the answer is made, queued or written), from 32
// goroutines on one connection. Finished streams are reused by their
// connection, so a stale one must never touch a live call: under -race,
// every quick call gets its own answer, every abandoned one ends in
// DeadlineExceeded (or Canceled, when the handler sees the deadline
// first), and the server gives back every slot.
func TestGRPCResetStorm(t *testing.T) {
	const workers, perWorker = 32, 60
	srv, addr, _ := startHoldServer(t, core.ServerOptions{}, core.GRPCOptions{}, workers*perWorker)
	cc := dialGRPCFrom(t, addr, "127.0.0.1")
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				if (w+i)%3 == 0 {
					ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
					err := hello(ctx, cc, "hold")
					cancel()
					// The client's deadline, or the server's (the same
					// grpc-timeout) seen first by the handler.
					if c := status.Code(err); c != codes.DeadlineExceeded && c != codes.Canceled {
						errs <- err
						return
					}
					continue
				}
				out := new(greeterpb.HelloReply)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := cc.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: "quick"}, out)
				cancel()
				if err != nil || out.GetMessage() != "Hello!" {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a call ended wrongly: %v", err)
	}
	waitZero(t, "InFlight", srv.InFlight)
	if err := hello(context.Background(), cc, "after"); err != nil {
		t.Fatalf("a call after the storm: %v", err)
	}
}
