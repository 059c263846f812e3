package core

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// benchTLSPair is benchPair over TLS 1.3: the server behind a
// tls.Listener with a certificate made here, the client through the tls
// transport (verification skipped: it costs only at the handshake).
func benchTLSPair(b *testing.B) *Client {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := NewServer(ServerOptions{Catalog: testCatalog(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Register("Raw", rawEcho{}); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	tl := tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{ALPNProtocol},
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	go func() { _ = srv.Serve(tl) }()
	tr, err := NewTLS(TLSConfig{InsecureSkipVerify: true})
	if err != nil {
		b.Fatal(err)
	}
	c, err := NewClient(ClientOptions{Targets: []string{ln.Addr().String()}, Transport: tr, Codec: RawCodec{}, Catalog: testCatalog(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = c.Close()
		_ = srv.Close()
	})
	return c
}

// BenchmarkEcho1KiBParallel100TLS is BenchmarkEcho1KiBParallel100 over
// TLS 1.3: what encryption adds per call (cpu-ns/op against the plain
// benchmark's).
func BenchmarkEcho1KiBParallel100TLS(b *testing.B) {
	c := benchTLSPair(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(2048)
	b.SetParallelism(100 / max(1, testingProcs()))
	var failed atomic.Int64
	b.ResetTimer()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		req := make([]byte, 1024)
		var resp []byte
		for pb.Next() {
			if err := c.Call(ctx, "Raw.Echo", req, &resp); err != nil {
				failed.Add(1)
			}
		}
	})
	if failed.Load() > 0 {
		b.Fatalf("%d calls failed", failed.Load())
	}
}
