package core_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	"github.com/kiterpc/kite/spi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// selfSignedTLS writes a self-signed certificate for 127.0.0.1 and its key
// and returns Kite's server transport and the pool that trusts it.
func selfSignedTLS(t *testing.T) (*core.TLS, *x509.CertPool, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kite-grpc-tls-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := core.NewTLS(core.TLSConfig{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tr, pool, certFile
}

func dialGRPCTLS(t *testing.T, addr string, pool *x509.CertPool) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// tlsGreeter serves the greeter with gRPC enabled on a TLS listener of tr
// on loopback, closed at the end of the test.
func tlsGreeter(t *testing.T, tr *core.TLS) net.Listener {
	t.Helper()
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
	return ln
}

// TestGRPCOverTLS: a grpc-go client with TLS credentials (ALPN "h2")
// calls a Kite server on its TLS listener, unary and streaming, while a
// Kite client over TLS (ALPN "kite/1") calls the same listener.
func TestGRPCOverTLS(t *testing.T) {
	tr, pool, certFile := selfSignedTLS(t)
	ln := tlsGreeter(t, tr)
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cc := dialGRPCTLS(t, addr, pool)
	out := &greeterpb.HelloReply{}
	if err := cc.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: "tls"}, out); err != nil || out.GetMessage() != "Hello, tls!" {
		t.Fatalf("gRPC over TLS: %v %v", out, err)
	}
	ss, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, greeterPath+"StreamGreetings")
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.SendMsg(&greeterpb.HelloRequest{Name: "s", Count: 50}); err != nil {
		t.Fatal(err)
	}
	_ = ss.CloseSend()
	n := 0
	for {
		r := &greeterpb.HelloReply{}
		if err := ss.RecvMsg(r); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("server stream over TLS after %d: %v", n, err)
		}
		n++
	}
	if n != 50 {
		t.Fatalf("server stream over TLS: %d replies, want 50", n)
	}

	ktr, err := core.NewTLS(core.TLSConfig{CAFile: certFile})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := core.NewClient(core.ClientOptions{Targets: []string{addr}, Codec: protoCodec{}, Transport: ktr})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	if err := kc.Call(ctx, "Greeter.SayHello", &greeterpb.HelloRequest{Name: "kite"}, out); err != nil || out.GetMessage() != "Hello, kite!" {
		t.Fatalf("Kite over TLS on the same listener: %v %v", out, err)
	}
}

// TestGRPCOverTLSWithoutGRPC: a TLS server that does not serve gRPC
// answers a gRPC client that negotiated h2 with a GOAWAY saying so, and
// keeps serving Kite clients.
func TestGRPCOverTLSWithoutGRPC(t *testing.T) {
	tr, pool, certFile := selfSignedTLS(t)
	srv, err := core.NewServer(core.ServerOptions{Codecs: []spi.Codec{protoCodec{}}})
	if err != nil {
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
	addr := ln.Addr().String()

	// What the server answers, read over a raw TLS connection offering h2.
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	got, _ := io.ReadAll(c)
	_ = c.Close()
	if !strings.Contains(string(got), "does not serve gRPC") {
		t.Fatalf("h2 over TLS to a server without gRPC answered %q", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = dialGRPCTLS(t, addr, pool).Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: "x"}, &greeterpb.HelloReply{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("grpc-go client: %v, want Unavailable", err)
	}

	ktr, err := core.NewTLS(core.TLSConfig{CAFile: certFile})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := core.NewClient(core.ClientOptions{Targets: []string{addr}, Codec: protoCodec{}, Transport: ktr})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	out := &greeterpb.HelloReply{}
	if err := kc.Call(ctx, "Greeter.SayHello", &greeterpb.HelloRequest{Name: "kite"}, out); err != nil || out.GetMessage() != "Hello, kite!" {
		t.Fatalf("Kite over TLS after the refused gRPC client: %v %v", out, err)
	}
}
