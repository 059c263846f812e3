package grpcinterop

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	codecproto "github.com/kiterpc/kite/plugins/codec-proto"
	compressgzip "github.com/kiterpc/kite/plugins/compress-gzip"
	compresssnappy "github.com/kiterpc/kite/plugins/compress-snappy"
	"github.com/kiterpc/kite/spi"
)

// countingListener counts the bytes its connections read and write.
type countingListener struct {
	net.Listener
	in, out atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.l.out.Add(int64(n))
	return n, err
}

// kiteGreeter is a Kite Greeter that answers SayHello only.
type kiteGreeter struct{ greeterpb.GreeterServer }

func (kiteGreeter) SayHello(_ context.Context, in *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return &greeterpb.HelloReply{Message: "Hello, " + in.GetName() + "!", Seq: 1}, nil
}

// bigName is a compressible name: 64 KiB of text, so a compressed body is
// a small fraction of it on the wire.
var bigName = strings.Repeat("kite speaks grpc-encoding gzip ", 64<<10/31)

// TestGRPCClientGzipToKiteServer: a grpc-go client that compresses with
// gzip (grpc-go's built-in compressor) calls a Kite server: the server
// decompresses the request and answers in gzip too, since the client
// says it reads it. The bytes on the wire show both directions
// compressed.
func TestGRPCClientGzipToKiteServer(t *testing.T) {
	srv, err := core.NewServer(core.ServerOptions{Codecs: []spi.Codec{codecproto.New()}, Compressors: []spi.Compressor{compressgzip.New()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.EnableGRPC(core.GRPCOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := greeterpb.RegisterGreeterServer(srv, kiteGreeter{}); err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: raw}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	cc, err := grpc.NewClient("passthrough:///"+raw.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.UseCompressor(gzip.Name)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := new(greeterpb.HelloReply)
	if err := cc.Invoke(ctx, "/kite.examples.greeter.Greeter/SayHello", &greeterpb.HelloRequest{Name: bigName}, out); err != nil {
		t.Fatal(err)
	}
	if out.GetMessage() != "Hello, "+bigName+"!" {
		t.Fatalf("answer of %d bytes, want the %d-byte greeting", len(out.GetMessage()), len(bigName)+8)
	}
	// 64 KiB each way uncompressed; gzip takes this text below 2 KiB.
	if in, sent := ln.in.Load(), ln.out.Load(); in > int64(len(bigName))/8 || sent > int64(len(bigName))/8 {
		t.Fatalf("server read %d and wrote %d bytes for a 64 KiB request and answer: not compressed", in, sent)
	}

	// A client that does not compress, on the same server, gets a plain
	// answer.
	cc2, err := grpc.NewClient("passthrough:///"+raw.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc2.Close()
	if err := cc2.Invoke(ctx, "/kite.examples.greeter.Greeter/SayHello", &greeterpb.HelloRequest{Name: "plain"}, out); err != nil || out.GetMessage() != "Hello, plain!" {
		t.Fatalf("uncompressed call: %v %q", err, out.GetMessage())
	}
}

// startCountingGRPC runs a grpc-go Greeter server (gzip registered, as
// this file's import of google.golang.org/grpc/encoding/gzip does) on a
// listener that counts the bytes on the wire.
func startCountingGRPC(t *testing.T) (*grpcGreeter, *countingListener) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: raw}
	g := &grpcGreeter{name: "gz"}
	gs := grpc.NewServer()
	gs.RegisterService(g.desc(), g)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return g, ln
}

// TestKiteClientGzipToGRPCServer: a Kite client whose compressor is gzip
// calls a grpc-go server (gzip registered, as importing
// google.golang.org/grpc/encoding/gzip does) through the grpc transport:
// the request goes out as grpc-encoding gzip, grpc-go answers in gzip,
// and the Kite client decompresses the answer.
func TestKiteClientGzipToGRPCServer(t *testing.T) {
	g, ln := startCountingGRPC(t)
	raw := ln.Listener

	newClient := func(comp spi.Compressor) *core.Client {
		kc, err := core.NewClient(core.ClientOptions{
			Targets:    []string{raw.Addr().String()},
			Transport:  &core.GRPCTransport{Package: "kite.examples.greeter"},
			Codec:      codecproto.New(),
			Compressor: comp, // the answer's gzip is read with the catalog's (this test links it)
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = kc.Close() })
		return kc
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	gc := greeterpb.NewGreeterClient(newClient(compressgzip.New()))
	r, err := gc.SayHello(ctx, &greeterpb.HelloRequest{Name: bigName})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetMessage() != "Hello, "+bigName+"!" {
		t.Fatalf("answer of %d bytes, want the %d-byte greeting", len(r.GetMessage()), len(bigName)+8)
	}
	if in, sent := ln.in.Load(), ln.out.Load(); in > int64(len(bigName))/8 || sent > int64(len(bigName))/8 {
		t.Fatalf("grpc-go server read %d and wrote %d bytes for a 64 KiB request and answer: not compressed", in, sent)
	}

	// Kite's snappy is its block format, which no gRPC snappy compressor
	// reads: refused before anything is sent, with the reason.
	sc := greeterpb.NewGreeterClient(newClient(compresssnappy.New()))
	before := g.calls.Load()
	_, err = sc.SayHello(ctx, &greeterpb.HelloRequest{Name: bigName})
	var se *spi.Error
	if !errors.As(err, &se) || se.Code != spi.Unimplemented || !strings.Contains(se.Message, "block format") {
		t.Fatalf("snappy over the grpc transport: want Unimplemented naming the block format, got %v", err)
	}
	if g.calls.Load() != before {
		t.Fatal("the snappy call reached the server")
	}
}

// TestKiteClientGzipStreamsToGRPCServer: a Kite client whose compressor
// is gzip opens streams to a grpc-go server through the grpc transport:
// each stream declares grpc-encoding gzip in its headers, so its
// messages go out compressed (each flagged), grpc-go reads them and
// answers in gzip too; the bytes on the wire show both directions
// compressed, bidirectional and server streaming alike.
func TestKiteClientGzipStreamsToGRPCServer(t *testing.T) {
	_, ln := startCountingGRPC(t)
	raw := ln.Listener
	kc, err := core.NewClient(core.ClientOptions{
		Targets:    []string{raw.Addr().String()},
		Transport:  &core.GRPCTransport{Package: "kite.examples.greeter"},
		Codec:      codecproto.New(),
		Compressor: compressgzip.New(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	gc := greeterpb.NewGreeterClient(kc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	const n = 4
	chat, err := gc.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := int32(1); i <= n; i++ {
		if err := chat.Send(&greeterpb.HelloRequest{Name: bigName}); err != nil {
			t.Fatal(err)
		}
		r, err := chat.Recv()
		if err != nil || r.GetSeq() != i || r.GetMessage() != "Hi, "+bigName+"!" {
			t.Fatalf("chat %d: %d-byte answer, seq %d, %v", i, len(r.GetMessage()), r.GetSeq(), err)
		}
	}
	_ = chat.CloseSend()
	if _, err := chat.Recv(); err != io.EOF {
		t.Fatalf("chat end: %v", err)
	}
	ss, err := gc.StreamGreetings(ctx, &greeterpb.HelloRequest{Name: bigName, Count: n})
	if err != nil {
		t.Fatal(err)
	}
	for i := int32(1); i <= n; i++ {
		r, err := ss.Recv()
		if err != nil || r.GetSeq() != i || r.GetMessage() != bigName {
			t.Fatalf("server stream %d: %d-byte answer, %v", i, len(r.GetMessage()), err)
		}
	}
	if _, err := ss.Recv(); err != io.EOF {
		t.Fatalf("server stream end: %v", err)
	}
	// 5 messages of 64 KiB in and 8 out, uncompressed; gzip takes each
	// below 2 KiB.
	if in, sent := ln.in.Load(), ln.out.Load(); in > int64(len(bigName)) || sent > int64(len(bigName)) {
		t.Fatalf("grpc-go server read %d and wrote %d bytes for 5 and 8 messages of 64 KiB: not compressed", in, sent)
	}
}
