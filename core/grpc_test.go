package core_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	"github.com/kiterpc/kite/spi"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// protoCodec is a minimal proto codec for these tests (core cannot import
// the codec-proto plugin; the wire id is the same).
type protoCodec struct{}

func (protoCodec) Name() string { return "proto" }
func (protoCodec) ID() uint8    { return spi.CodecProto }
func (protoCodec) Marshal(dst []byte, v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return dst, fmt.Errorf("proto codec: %T is not a proto.Message", v)
	}
	return proto.MarshalOptions{}.MarshalAppend(dst, m)
}
func (protoCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("proto codec: %T is not a proto.Message", v)
	}
	return proto.Unmarshal(data, m)
}

// grpcGreeter is the Kite service the gRPC clients call.
type grpcGreeter struct {
	greeterpb.UnimplementedGreeterServer
	deadlineSeen atomic.Bool
}

func (g *grpcGreeter) SayHello(ctx context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	switch req.GetName() {
	case "":
		return nil, spi.Errorf(spi.InvalidArgument, "a name is required")
	case "slow":
		if _, ok := ctx.Deadline(); ok {
			g.deadlineSeen.Store(true)
		}
		<-ctx.Done()
		return nil, spi.WrapError(spi.DeadlineExceeded, ctx.Err(), "too slow")
	}
	call := core.CallFromContext(ctx)
	if t := call.Meta.Get("x-tenant"); t != "" {
		call.Trailer = &spi.Metadata{}
		call.Trailer.Set("x-tenant-echo", t)
		call.Trailer.Set("x-raw-bin", call.Meta.Get("x-raw-bin"))
	}
	return &greeterpb.HelloReply{Message: "Hello, " + req.GetName() + "!", Seq: 1}, nil
}

func (g *grpcGreeter) StreamGreetings(ctx context.Context, req *greeterpb.HelloRequest, stream greeterpb.Greeter_StreamGreetingsServer) error {
	if req.GetName() == "panic" {
		panic("secret-value-42") // must not reach the caller
	}
	for i := int32(1); i <= req.GetCount(); i++ {
		if err := stream.Send(&greeterpb.HelloReply{Message: fmt.Sprintf("Hello #%d, %s!", i, req.GetName()), Seq: i}); err != nil {
			return err
		}
	}
	return nil
}

func (g *grpcGreeter) RecordNames(_ context.Context, stream greeterpb.Greeter_RecordNamesServer) error {
	sum := &greeterpb.NameSummary{}
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(sum)
		}
		if err != nil {
			return err
		}
		sum.Count++
		sum.Names = append(sum.Names, req.GetName())
	}
}

func (g *grpcGreeter) Chat(_ context.Context, stream greeterpb.Greeter_ChatServer) error {
	for seq := int32(1); ; seq++ {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&greeterpb.HelloReply{Message: "Hi, " + req.GetName() + "!", Seq: seq}); err != nil {
			return err
		}
	}
}

// authFilter rejects calls without the right bearer token, except on
// SayHello, so that one test can check the rejection and the others
// need no token.
var authFilter = spi.FilterFunc(func(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		if call.Method == greeterpb.Greeter_RecordNames_FullMethodName && call.Meta.Get("authorization") != "Bearer good" {
			return spi.Errorf(spi.Unauthenticated, "bad token")
		}
		return next(ctx, call)
	}
})

const greeterPath = "/kite.examples.greeter.Greeter/"

// startGRPCServer runs a Kite server with gRPC enabled on a loopback
// port and returns it, its address and the greeter it serves.
func startGRPCServer(t *testing.T, opts core.ServerOptions) (*core.Server, string, *grpcGreeter) {
	t.Helper()
	opts.Codecs = append(opts.Codecs, protoCodec{})
	opts.Filters = append(opts.Filters, authFilter)
	srv, err := core.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.EnableGRPC(core.GRPCOptions{MaxMessage: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	g := &grpcGreeter{}
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

func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func TestGRPCClientUnary(t *testing.T) {
	_, addr, _ := startGRPCServer(t, core.ServerOptions{})
	cc := dialGRPC(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := &greeterpb.HelloReply{}
	if err := cc.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: "grpc"}, out); err != nil {
		t.Fatal(err)
	}
	if out.GetMessage() != "Hello, grpc!" || out.GetSeq() != 1 {
		t.Fatalf("reply %v", out)
	}
	// The package-less path names the same method.
	if err := cc.Invoke(ctx, "/Greeter/SayHello", &greeterpb.HelloRequest{Name: "short"}, out); err != nil || out.GetMessage() != "Hello, short!" {
		t.Fatalf("package-less path: %v %v", out, err)
	}
	// 200 calls in parallel over the one connection.
	errs := make(chan error, 200)
	for i := range 200 {
		go func() {
			o := &greeterpb.HelloReply{}
			err := cc.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: fmt.Sprint(i)}, o)
			if err == nil && o.GetMessage() != fmt.Sprintf("Hello, %d!", i) {
				err = fmt.Errorf("call %d got %q", i, o.GetMessage())
			}
			errs <- err
		}()
	}
	for range 200 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestGRPCClientTypedErrorAndUnknownMethod(t *testing.T) {
	_, addr, _ := startGRPCServer(t, core.ServerOptions{})
	cc := dialGRPC(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := cc.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{}, &greeterpb.HelloReply{})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != "a name is required" {
		t.Fatalf("want InvalidArgument %q, got %v", "a name is required", err)
	}
	err = cc.Invoke(ctx, "/kite.examples.greeter.Nope/SayHello", &greeterpb.HelloRequest{Name: "x"}, &greeterpb.HelloReply{})
	if st := status.Convert(err); st.Code() != codes.Unimplemented || st.Message() != `unknown method "kite.examples.greeter.Nope.SayHello"` {
		t.Fatalf("want Unimplemented unknown method, got %v", err)
	}
	// The connection stays usable after both.
	out := &greeterpb.HelloReply{}
	if err := cc.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: "again"}, out); err != nil || out.GetMessage() != "Hello, again!" {
		t.Fatalf("after errors: %v %v", out, err)
	}
}

func TestGRPCClientDeadlineExceeded(t *testing.T) {
	_, addr, g := startGRPCServer(t, core.ServerOptions{})
	cc := dialGRPC(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := cc.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: "slow"}, &greeterpb.HelloReply{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("want DeadlineExceeded, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	if !g.deadlineSeen.Load() {
		t.Fatal("the handler's context had no deadline: grpc-timeout was not applied")
	}
}

func TestGRPCClientMetadataBothWays(t *testing.T) {
	_, addr, _ := startGRPCServer(t, core.ServerOptions{})
	cc := dialGRPC(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw := string([]byte{0, 1, 2, 0xff, 'k'})
	ctx = metadata.AppendToOutgoingContext(ctx, "x-tenant", "acme", "x-raw-bin", raw)
	var trailer metadata.MD
	out := &greeterpb.HelloReply{}
	if err := cc.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: "md"}, out, grpc.Trailer(&trailer)); err != nil {
		t.Fatal(err)
	}
	if got := trailer.Get("x-tenant-echo"); len(got) != 1 || got[0] != "acme" {
		t.Fatalf("trailer x-tenant-echo = %v (trailer %v)", got, trailer)
	}
	if got := trailer.Get("x-raw-bin"); len(got) != 1 || got[0] != raw {
		t.Fatalf("binary trailer x-raw-bin = %q, want %q", got, raw)
	}
}

func TestGRPCClientStreams(t *testing.T) {
	_, addr, _ := startGRPCServer(t, core.ServerOptions{})
	cc := dialGRPC(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Server streaming: 300 replies, beyond the Kite stream window.
	ss, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, greeterPath+"StreamGreetings")
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.SendMsg(&greeterpb.HelloRequest{Name: "s", Count: 300}); err != nil {
		t.Fatal(err)
	}
	_ = ss.CloseSend()
	for i := int32(1); ; i++ {
		r := &greeterpb.HelloReply{}
		err := ss.RecvMsg(r)
		if err == io.EOF {
			if i != 301 {
				t.Fatalf("server stream ended after %d replies", i-1)
			}
			break
		}
		if err != nil || r.GetSeq() != i {
			t.Fatalf("reply %d: %v %v", i, r, err)
		}
	}

	// Client streaming, with the token the auth filter wants.
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer good")
	cs, err := cc.NewStream(actx, &grpc.StreamDesc{ClientStreams: true}, greeterPath+"RecordNames")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := cs.SendMsg(&greeterpb.HelloRequest{Name: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	sum := &greeterpb.NameSummary{}
	if err := cs.RecvMsg(sum); err != nil {
		t.Fatal(err)
	}
	if sum.GetCount() != 200 || sum.GetNames()[199] != "199" {
		t.Fatalf("summary %d names", sum.GetCount())
	}

	// Bidirectional, in lock step.
	bs, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, greeterPath+"Chat")
	if err != nil {
		t.Fatal(err)
	}
	for i := int32(1); i <= 50; i++ {
		if err := bs.SendMsg(&greeterpb.HelloRequest{Name: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		r := &greeterpb.HelloReply{}
		if err := bs.RecvMsg(r); err != nil || r.GetSeq() != i || r.GetMessage() != fmt.Sprintf("Hi, %d!", i) {
			t.Fatalf("chat %d: %v %v", i, r, err)
		}
	}
	_ = bs.CloseSend()
	if err := bs.RecvMsg(&greeterpb.HelloReply{}); err != io.EOF {
		t.Fatalf("chat end: %v", err)
	}
}

func TestGRPCClientAuthFilterRejects(t *testing.T) {
	_, addr, _ := startGRPCServer(t, core.ServerOptions{})
	cc := dialGRPC(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer bad")
	cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, greeterPath+"RecordNames")
	if err != nil {
		t.Fatal(err)
	}
	_ = cs.SendMsg(&greeterpb.HelloRequest{Name: "x"})
	_ = cs.CloseSend()
	err = cs.RecvMsg(&greeterpb.NameSummary{})
	if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != "bad token" {
		t.Fatalf("want Unauthenticated from the filter, got %v", err)
	}
}

// TestGRPCAndKiteOnOnePort: the same listener serves a Kite client and a
// gRPC client at once.
func TestGRPCAndKiteOnOnePort(t *testing.T) {
	_, addr, _ := startGRPCServer(t, core.ServerOptions{})
	cc := dialGRPC(t, addr)
	kc, err := core.NewClient(core.ClientOptions{Targets: []string{addr}, Codec: protoCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := &greeterpb.HelloReply{}
	if err := kc.Call(ctx, "Greeter.SayHello", &greeterpb.HelloRequest{Name: "kite"}, out); err != nil || out.GetMessage() != "Hello, kite!" {
		t.Fatalf("kite call: %v %v", out, err)
	}
	if err := cc.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: "grpc"}, out); err != nil || out.GetMessage() != "Hello, grpc!" {
		t.Fatalf("grpc call: %v %v", out, err)
	}
}

// rawConn dials addr and writes b, returning what the server answers
// before it closes the connection.
func rawExchange(t *testing.T, addr string, b []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatal(err)
	}
	return out
}

func TestGRPCBadInputServerStaysHealthy(t *testing.T) {
	_, addr, _ := startGRPCServer(t, core.ServerOptions{})
	cc := dialGRPC(t, addr)
	check := func(when string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out := &greeterpb.HelloReply{}
		if err := cc.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: "ok"}, out); err != nil || out.GetMessage() != "Hello, ok!" {
			t.Fatalf("after %s: %v %v", when, out, err)
		}
	}
	check("start")

	// HTTP/1.1 gets a readable HTTP answer and the connection closes.
	got := rawExchange(t, addr, []byte("GET / HTTP/1.1\r\nHost: kite\r\n\r\n"))
	if !strings.HasPrefix(string(got), "HTTP/1.1 505 ") || !strings.Contains(string(got), "gRPC (HTTP/2") {
		t.Fatalf("HTTP/1.1 request answered %q", got)
	}
	check("an HTTP/1.1 request")

	// A malformed preface gets SETTINGS + GOAWAY PROTOCOL_ERROR.
	got = rawExchange(t, addr, []byte("PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n"))
	fr := http2.NewFramer(nil, bytes.NewReader(got))
	var goaway *http2.GoAwayFrame
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			goaway = g
			break
		}
	}
	if goaway == nil || goaway.ErrCode != http2.ErrCodeProtocol || !strings.Contains(string(goaway.DebugData()), "preface") {
		t.Fatalf("malformed preface answered %q", got)
	}
	check("a malformed preface")

	// An oversized message through grpc-go: refused with ResourceExhausted.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := cc.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: strings.Repeat("x", 100<<10)}, &greeterpb.HelloReply{})
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "larger than max") {
		t.Fatalf("oversized message: %v", err)
	}
	check("an oversized message")
}

// TestGRPCOversizedPrefixRefusedBeforeBody: a message prefix announcing
// 1 GiB is answered ResourceExhausted at once, with none of the body
// sent: the server neither waits for it nor allocates for it.
func TestGRPCOversizedPrefixRefusedBeforeBody(t *testing.T) {
	_, addr, _ := startGRPCServer(t, core.ServerOptions{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	_ = fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":path", Value: greeterPath + "SayHello"},
		{Name: ":authority", Value: "kite"}, {Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"}} {
		_ = enc.WriteField(f)
	}
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	_ = fr.WriteData(1, false, []byte{0, 0x40, 0, 0, 0, 'x'}) // 1 GiB announced, 1 byte sent
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no answer to the oversized prefix: %v", err)
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamID == 1 {
			var st, msg string
			for _, hf := range h.Fields {
				switch hf.Name {
				case "grpc-status":
					st = hf.Value
				case "grpc-message":
					msg = hf.Value
				}
			}
			if st == "" {
				continue // response headers; the status follows
			}
			if st != "8" || !strings.Contains(msg, "1073741824") {
				t.Fatalf("status %s %q, want 8 (ResourceExhausted) naming the size", st, msg)
			}
			return
		}
	}
}

// blockingGreeter holds SayHello("hold") until release is closed.
type blockingGreeter struct {
	grpcGreeter
	started chan struct{}
	release chan struct{}
}

func (g *blockingGreeter) SayHello(ctx context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	if req.GetName() == "hold" {
		close(g.started)
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, spi.WrapError(spi.Canceled, ctx.Err(), "canceled")
		}
	}
	return &greeterpb.HelloReply{Message: "Hello, " + req.GetName() + "!"}, nil
}

// TestGRPCGracefulShutdown: Shutdown sends GOAWAY, lets the call in
// progress finish and be answered, then closes.
func TestGRPCGracefulShutdown(t *testing.T) {
	srv, err := core.NewServer(core.ServerOptions{Codecs: []spi.Codec{protoCodec{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.EnableGRPC(core.GRPCOptions{}); err != nil {
		t.Fatal(err)
	}
	g := &blockingGreeter{started: make(chan struct{}), release: make(chan struct{})}
	if err := greeterpb.RegisterGreeterServer(srv, g); err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cc := dialGRPC(t, ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var out greeterpb.HelloReply
	go func() { done <- cc.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: "hold"}, &out) }()
	<-g.started
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	// The server is draining: the call in progress holds Shutdown.
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a call in progress", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(g.release)
	if err := <-done; err != nil || out.GetMessage() != "Hello, hold!" {
		t.Fatalf("call in progress during shutdown: %v %v", out.GetMessage(), err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// New calls find no server.
	cctx, ccancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer ccancel()
	if err := cc.Invoke(cctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: "late"}, &out); status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call after shutdown: %v", err)
	}
}

// TestGRPCShutdownSendsGoAway: an idle gRPC connection gets an HTTP/2
// GOAWAY(NO_ERROR) naming the shutdown before the server closes it.
func TestGRPCShutdownSendsGoAway(t *testing.T) {
	srv, addr, _ := startGRPCServer(t, core.ServerOptions{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	_ = fr.WriteSettings()
	// The server's SETTINGS prove the connection is being served as gRPC.
	if f, err := fr.ReadFrame(); err != nil {
		t.Fatal(err)
	} else if _, ok := f.(*http2.SettingsFrame); !ok {
		t.Fatalf("first frame %T, want SETTINGS", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended without GOAWAY: %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeNo || string(g.DebugData()) != "server shutting down" {
				t.Fatalf("GOAWAY %v %q", g.ErrCode, g.DebugData())
			}
			break
		}
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// A stream handler's panic reaches a gRPC caller as a generic Internal
// with an incident id, as on Kite's protocol: the panic value stays in
// the server's log.
func TestGRPCStreamPanicKeepsValueLocal(t *testing.T) {
	_, addr, _ := startGRPCServer(t, core.ServerOptions{})
	cc := dialGRPC(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ss, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, greeterPath+"StreamGreetings")
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.SendMsg(&greeterpb.HelloRequest{Name: "panic", Count: 1}); err != nil {
		t.Fatal(err)
	}
	_ = ss.CloseSend()
	err = ss.RecvMsg(&greeterpb.HelloReply{})
	s := status.Convert(err)
	if s.Code() != codes.Internal || strings.Contains(s.Message(), "secret-value-42") || !strings.Contains(s.Message(), "incident") {
		t.Fatalf("want a generic Internal with an incident id, got %v: %q", s.Code(), s.Message())
	}
}
