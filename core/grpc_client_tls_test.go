package core_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
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
	ln := tlsGreeter(t, tr)

	// The catalog's grpc transport takes the tls transport's attributes.
	cfg, _ := json.Marshal(map[string]any{"ca": certFile})
	gt, err := spi.Default.BuildTransport("grpc", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if gt.(*core.GRPCTransport).TLS == nil {
		t.Fatal("ca given, TLS not set")
	}
	kc, err := core.NewClient(core.ClientOptions{Targets: []string{ln.Addr().String()}, Codec: protoCodec{}, Transport: gt})
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

// TestGRPCCatalogTransportTLSAttributes: without TLS attributes the
// catalog's grpc transport is h2c; client_auth (a server setting) and a
// bad min_version are refused with the reason.
func TestGRPCCatalogTransportTLSAttributes(t *testing.T) {
	gt, err := spi.Default.BuildTransport("grpc", spi.Config(`{"package":"p"}`))
	if err != nil || gt.(*core.GRPCTransport).TLS != nil || gt.(*core.GRPCTransport).Package != "p" {
		t.Fatalf("plain grpc transport: %+v %v", gt, err)
	}
	gt, err = spi.Default.BuildTransport("grpc", spi.Config(`{"tls":true}`))
	if err != nil || gt.(*core.GRPCTransport).TLS == nil {
		t.Fatalf("tls = true: %+v %v", gt, err)
	}
	for cfg, want := range map[string]string{
		`{"client_auth":"require"}`: "client_auth is a server setting",
		`{"min_version":"1.1"}`:     `min_version "1.1" is not supported`,
	} {
		if _, err := spi.Default.BuildTransport("grpc", spi.Config(cfg)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", cfg, err, want)
		}
	}
}
