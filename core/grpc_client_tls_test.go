package core_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	"github.com/kiterpc/kite/spi"
)

// TestGRPCTransportOverTLSToKiteServer: a Kite client on the grpc
// transport with TLS reaches a Kite server's TLS listener over gRPC (ALPN
// h2, the server's gRPC path), unary and a server stream.
func TestGRPCTransportOverTLSToKiteServer(t *testing.T) {
	tr, _, certFile := selfSignedTLS(t)
	srv, err := core.NewServer(core.ServerOptions{Codecs: []spi.Codec{protoCodec{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.EnableGRPC(core.GRPCOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := greeterpb.RegisterGreeterServer(srv, &grpcGreeter{}); err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })

	ctr, err := core.NewTLS(core.TLSConfig{CAFile: certFile})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := core.NewClient(core.ClientOptions{Targets: []string{ln.Addr().String()}, Codec: protoCodec{},
		Transport: &core.GRPCTransport{TLS: ctr}})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gc := greeterpb.NewGreeterClient(kc)
	r, err := gc.SayHello(ctx, &greeterpb.HelloRequest{Name: "tls"})
	if err != nil || r.GetMessage() != "Hello, tls!" {
		t.Fatalf("SayHello: %v %v", r, err)
	}
	ss, err := gc.StreamGreetings(ctx, &greeterpb.HelloRequest{Name: "s", Count: 40})
	if err != nil {
		t.Fatal(err)
	}
	n := int32(0)
	for {
		r, err := ss.Recv()
		if err == io.EOF {
			break
		}
		if err != nil || r.GetSeq() != n+1 {
			t.Fatalf("reply %d: %v %v", n+1, r, err)
		}
		n++
	}
	if n != 40 {
		t.Fatalf("got %d of 40 stream replies", n)
	}
}
