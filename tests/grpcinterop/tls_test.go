package grpcinterop

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	codecproto "github.com/kiterpc/kite/plugins/codec-proto"
	"github.com/kiterpc/kite/spi"
)

// testCA is a throwaway certificate authority writing PEM files to dir.
type testCA struct {
	t    *testing.T
	dir  string
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	file string // the CA certificate, PEM
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{t: t, dir: t.TempDir(), key: key, cert: cert}
	ca.file = ca.write(name+"-ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(name, typ string, der []byte) string {
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return p
}

// issue signs a leaf for name (a server certificate for 127.0.0.1 and the
// DNS name "greeter.test", or a client certificate) and returns its files.
func (ca *testCA) issue(name string, server bool, serial int64) (certFile, keyFile string) {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"greeter.test"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return ca.write(name+".pem", "CERTIFICATE", der), ca.write(name+".key", "EC PRIVATE KEY", kder)
}

// startGRPCTLS starts a real grpc-go server with TLS credentials that
// requires client certificates signed by ca (mutual TLS).
func startGRPCTLS(t *testing.T, ca *testCA) (*grpcGreeter, string) {
	t.Helper()
	certFile, keyFile := ca.issue("server", true, 2)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &grpcGreeter{name: "tls"}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	})))
	gs.RegisterService(g.desc(), g)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return g, ln.Addr().String()
}

// callGreeter makes a unary call and reads a server stream of n replies.
func callGreeter(ctx context.Context, t *testing.T, gc greeterpb.GreeterClient, n int32) {
	t.Helper()
	r, err := gc.SayHello(ctx, &greeterpb.HelloRequest{Name: "tls"})
	if err != nil || r.GetMessage() != "Hello, tls!" {
		t.Fatalf("SayHello over TLS: %v %v", r, err)
	}
	ss, err := gc.StreamGreetings(ctx, &greeterpb.HelloRequest{Name: "s", Count: n})
	if err != nil {
		t.Fatal(err)
	}
	for i := int32(1); ; i++ {
		r, err := ss.Recv()
		if err == io.EOF {
			if i != n+1 {
				t.Fatalf("stream ended after %d of %d", i-1, n)
			}
			return
		}
		if err != nil || r.GetSeq() != i {
			t.Fatalf("reply %d: %v %v", i, r, err)
		}
	}
}

// TestKiteClientCallsGRPCServerOverTLS: a Kite client on the grpc
// transport with TLS (its CA, a client certificate, a server name) calls
// a grpc-go server started with grpc.Creds(credentials.NewTLS(...)):
// unary and a server stream beyond the Kite stream window. A client
// trusting another CA fails with Unavailable naming the certificate
// problem; one without a client certificate is refused by the server.
func TestKiteClientCallsGRPCServerOverTLS(t *testing.T) {
	ca := newCA(t, "kite-test")
	g, addr := startGRPCTLS(t, ca)
	clientCert, clientKey := ca.issue("client", false, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	newClient := func(cfg core.TLSConfig) *core.Client {
		t.Helper()
		tr, err := core.NewTLS(cfg)
		if err != nil {
			t.Fatal(err)
		}
		kc, err := core.NewClient(core.ClientOptions{
			Targets:   []string{addr},
			Transport: &core.GRPCTransport{Package: "kite.examples.greeter", TLS: tr},
			Codec:     codecproto.New(),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = kc.Close() })
		return kc
	}

	// The server name checked is the one configured, not the address.
	kc := newClient(core.TLSConfig{CAFile: ca.file, CertFile: clientCert, KeyFile: clientKey, ServerName: "greeter.test"})
	callGreeter(ctx, t, greeterpb.NewGreeterClient(kc), 100)
	if g.calls.Load() != 1 {
		t.Fatalf("server counted %d unary calls, want 1", g.calls.Load())
	}

	// A CA that did not sign the server's certificate.
	other := newCA(t, "other")
	bad := newClient(core.TLSConfig{CAFile: other.file, CertFile: clientCert, KeyFile: clientKey})
	_, err := greeterpb.NewGreeterClient(bad).SayHello(ctx, &greeterpb.HelloRequest{Name: "x"})
	var se *spi.Error
	if !errors.As(err, &se) || se.Code != spi.Unavailable ||
		!strings.Contains(se.Message, "the server's certificate is not signed by an authority in ca file") ||
		!strings.Contains(se.Message, other.file) {
		t.Fatalf("wrong CA: want Unavailable naming the certificate problem and the ca file, got %v", err)
	}
	t.Logf("wrong CA: %v", err)

	// A name the certificate does not hold.
	wrongName := newClient(core.TLSConfig{CAFile: ca.file, CertFile: clientCert, KeyFile: clientKey, ServerName: "other.test"})
	_, err = greeterpb.NewGreeterClient(wrongName).SayHello(ctx, &greeterpb.HelloRequest{Name: "x"})
	if !errors.As(err, &se) || se.Code != spi.Unavailable || !strings.Contains(se.Message, `not valid for "other.test"`) {
		t.Fatalf("wrong server name: want Unavailable naming the name, got %v", err)
	}

	// No client certificate: the server requires one.
	noCert := newClient(core.TLSConfig{CAFile: ca.file, ServerName: "greeter.test"})
	_, err = greeterpb.NewGreeterClient(noCert).SayHello(ctx, &greeterpb.HelloRequest{Name: "x"})
	if !errors.As(err, &se) || se.Code != spi.Unavailable {
		t.Fatalf("no client certificate: want Unavailable, got %v", err)
	}
	if g.calls.Load() != 1 {
		t.Fatalf("refused connections reached the handler: %d calls", g.calls.Load())
	}
}

// TestKiteHCLClientCallsGRPCServerOverTLS: the same through kite.hcl — a
// client block with grpc and tls blocks.
func TestKiteHCLClientCallsGRPCServerOverTLS(t *testing.T) {
	ca := newCA(t, "kite-hcl")
	_, addr := startGRPCTLS(t, ca)
	clientCert, clientKey := ca.issue("client", false, 3)
	dir := t.TempDir()
	path := filepath.Join(dir, "kite.hcl")
	src := `
client "greeter" {
  target = "` + addr + `"
  codec    = "proto"
  balancer = "p2c"
  grpc { package = "kite.examples.greeter" }
  tls {
    ca          = "` + ca.file + `"
    cert        = "` + clientCert + `"
    key         = "` + clientKey + `"
    server_name = "greeter.test"
  }
}
client "missing_ca" {
  target = "` + addr + `"
  codec    = "proto"
  balancer = "p2c"
  grpc { package = "kite.examples.greeter" }
  tls {
    ca = "` + filepath.Join(dir, "nope.pem") + `"
  }
}
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := stack.Load(path, stack.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kc, err := st.Client("greeter")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	callGreeter(ctx, t, greeterpb.NewGreeterClient(kc), 10)

	// A tls file that cannot be read is named, with the place in kite.hcl.
	_, err = st.Client("missing_ca")
	if err == nil || !strings.Contains(err.Error(), path+":20:10:") || !strings.Contains(err.Error(), "reading ca file") {
		t.Fatalf("missing ca: want an error at %s:20:10 about the ca file, got %v", path, err)
	}
}

// TestGRPCOverTLSRefusesServerWithoutH2: a TLS server that selects no
// application protocol (no gRPC over TLS there) is refused with an error
// that says so, as grpc-go's client refuses it.
func TestGRPCOverTLSRefusesServerWithoutH2(t *testing.T) {
	ca := newCA(t, "no-h2")
	certFile, keyFile := ca.issue("server", true, 2)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	defer func() { _ = ln.Close(); <-done }()

	tr, err := core.NewTLS(core.TLSConfig{CAFile: ca.file})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = (&core.GRPCTransport{TLS: tr}).Dial(ctx, ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), `did not select ALPN "h2" (selected: none)`) {
		t.Fatalf("want a refusal naming ALPN h2, got %v", err)
	}
}
