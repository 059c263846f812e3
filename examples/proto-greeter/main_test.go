package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	jsoncodec "github.com/kiterpc/kite/plugins/codec-json"
	"github.com/kiterpc/kite/spi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T, impl greeterpb.GreeterServer) string {
	t.Helper()
	srv, err := core.NewServer(core.ServerOptions{})
	require.NoError(t, err)
	require.NoError(t, greeterpb.RegisterGreeterServer(srv, impl))
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, srv.Shutdown(ctx))
	})
	return ln.Addr().String()
}

func protoClient(t *testing.T, addr string) greeterpb.GreeterClient {
	t.Helper()
	g, c, err := dial(addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return g
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestUnary(t *testing.T) {
	g := protoClient(t, start(t, greeter{}))
	ctx := testCtx(t)
	r, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "Ada"})
	require.NoError(t, err)
	assert.True(t, proto.Equal(&greeterpb.HelloReply{Message: "Hello, Ada!", Seq: 1}, r), "got %v", r)

	_, err = g.SayHello(ctx, &greeterpb.HelloRequest{})
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err), "got %v", err)

	// SayHello is NO_SIDE_EFFECTS in the .proto: idempotent in the desc.
	require.Len(t, greeterpb.Greeter_ServiceDesc.Methods, 1)
	assert.True(t, greeterpb.Greeter_ServiceDesc.Methods[0].Idempotent)
}

// TestJSONAndProtoClientsTogether: the same server answers a JSON caller
// and a protobuf caller, each in its own codec.
func TestJSONAndProtoClientsTogether(t *testing.T) {
	addr := start(t, greeter{})
	pg := protoClient(t, addr)
	jc, err := core.NewClient(core.ClientOptions{Targets: []string{addr}, Codec: jsoncodec.New()})
	require.NoError(t, err)
	t.Cleanup(func() { jc.Close() })
	jg := greeterpb.NewGreeterClient(jc)
	ctx := testCtx(t)
	for i, g := range []greeterpb.GreeterClient{pg, jg, pg, jg} {
		r, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: fmt.Sprint("n", i)})
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("Hello, n%d!", i), r.GetMessage())
	}
}

func TestServerStreaming(t *testing.T) {
	g := protoClient(t, start(t, greeter{}))
	ctx := testCtx(t)
	// 200 messages: more than the flow-control window, so credit must flow.
	ss, err := g.StreamGreetings(ctx, &greeterpb.HelloRequest{Name: "Ada", Count: 200})
	require.NoError(t, err)
	var seqs []int32
	for {
		r, err := ss.Recv()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		seqs = append(seqs, r.GetSeq())
	}
	require.Len(t, seqs, 200)
	for i, s := range seqs {
		require.Equal(t, int32(i+1), s)
	}
	// Recv after the end keeps answering io.EOF.
	_, err = ss.Recv()
	assert.Equal(t, io.EOF, err)

	// A handler error ends the stream with its code.
	ss, err = g.StreamGreetings(ctx, &greeterpb.HelloRequest{Name: "Ada", Count: maxCount + 1})
	require.NoError(t, err)
	_, err = ss.Recv()
	assert.Equal(t, spi.OutOfRange, spi.CodeOf(err), "got %v", err)
}

// slowGreeter streams until its caller goes away.
type slowGreeter struct {
	greeter
	ended chan error
}

func (s slowGreeter) StreamGreetings(ctx context.Context, req *greeterpb.HelloRequest, stream greeterpb.Greeter_StreamGreetingsServer) error {
	for i := int32(1); ; i++ {
		if err := stream.Send(&greeterpb.HelloReply{Seq: i}); err != nil {
			s.ended <- err
			return err
		}
	}
}

// TestAbandonedStream: cancelling the caller's context ends the stream
// on the server too.
func TestAbandonedStream(t *testing.T) {
	impl := slowGreeter{ended: make(chan error, 1)}
	g := protoClient(t, start(t, impl))
	ctx, cancel := context.WithCancel(testCtx(t))
	ss, err := g.StreamGreetings(ctx, &greeterpb.HelloRequest{})
	require.NoError(t, err)
	for range 3 {
		_, err := ss.Recv()
		require.NoError(t, err)
	}
	cancel()
	select {
	case err := <-impl.ended:
		assert.Error(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the server kept streaming to a caller that left")
	}
	// Messages already buffered may still be read; then the stream ends
	// with Canceled.
	for err == nil {
		_, err = ss.Recv()
	}
	assert.Equal(t, spi.Canceled, spi.CodeOf(err), "got %v", err)
}

func TestClientStreaming(t *testing.T) {
	g := protoClient(t, start(t, greeter{}))
	cs, err := g.RecordNames(testCtx(t))
	require.NoError(t, err)
	var want []string
	for i := range 150 {
		n := fmt.Sprint("name-", i)
		want = append(want, n)
		require.NoError(t, cs.Send(&greeterpb.HelloRequest{Name: n}))
	}
	sum, err := cs.CloseAndRecv()
	require.NoError(t, err)
	assert.Equal(t, int32(150), sum.GetCount())
	assert.Equal(t, want, sum.GetNames())
}

// TestBidiConcurrent sends and receives from two goroutines at once.
func TestBidiConcurrent(t *testing.T) {
	g := protoClient(t, start(t, greeter{}))
	bs, err := g.Chat(testCtx(t))
	require.NoError(t, err)
	const n = 300
	sendErr := make(chan error, 1)
	go func() {
		for i := range n {
			if err := bs.Send(&greeterpb.HelloRequest{Name: fmt.Sprint(i)}); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- bs.CloseSend()
	}()
	for i := range n {
		r, err := bs.Recv()
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("Hi, %d!", i), r.GetMessage())
		require.Equal(t, int32(i+1), r.GetSeq())
	}
	_, err = bs.Recv()
	assert.Equal(t, io.EOF, err)
	require.NoError(t, <-sendErr)
}

// TestUnimplemented: a server built only from the generated
// UnimplementedGreeterServer answers Unimplemented on every shape.
func TestUnimplemented(t *testing.T) {
	g := protoClient(t, start(t, greeterpb.UnimplementedGreeterServer{}))
	ctx := testCtx(t)
	_, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "x"})
	assert.Equal(t, spi.Unimplemented, spi.CodeOf(err), "got %v", err)

	ss, err := g.StreamGreetings(ctx, &greeterpb.HelloRequest{})
	require.NoError(t, err)
	_, err = ss.Recv()
	assert.Equal(t, spi.Unimplemented, spi.CodeOf(err), "got %v", err)

	cs, err := g.RecordNames(ctx)
	require.NoError(t, err)
	_, err = cs.CloseAndRecv()
	assert.Equal(t, spi.Unimplemented, spi.CodeOf(err), "got %v", err)
}

func TestModes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, addr, func(a string) { ready <- a }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("server mode failed: %v", err)
	}
	var out bytes.Buffer
	require.NoError(t, session(testCtx(t), addr, "Ada", 2, &out))
	assert.Equal(t, `SayHello: Hello, Ada!
StreamGreetings: 1 Hello #1, Ada!
StreamGreetings: 2 Hello #2, Ada!
RecordNames: 3 names [Ada Grace Alan]
Chat: 1 Hi, Ada!
Chat: 2 Hi, Grace!
`, out.String())
	cancel()
	require.NoError(t, <-done)

	var errb bytes.Buffer
	assert.Equal(t, 2, run([]string{"-mode", "x"}, &out, &errb))
}
