package systems

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite"
	"github.com/kiterpc/kite/bench/echopb"
	"github.com/kiterpc/kite/core"

	protocodec "github.com/kiterpc/kite/plugins/codec-proto"
)

// serveKiteDefault is the server of README.md's "A taste": kite.NewServer
// with zero options, so every default applies (codec table, limits,
// logger), and the typed service generated code registers.
func serveKiteDefault(ln net.Listener) (Server, error) {
	s, err := kite.NewServer(kite.ServerOptions{})
	if err != nil {
		return nil, err
	}
	if err := echopb.RegisterKiteEcho(s, kiteEcho{}); err != nil {
		return nil, err
	}
	go func() { _ = s.Serve(ln) }()
	return kiteServer{s}, nil
}

// dialKiteDefault is README.md's client: kite.NewClient with only the
// target set (default codec "auto", balancer, pool, retries, breaker).
func dialKiteDefault(addr string, _ int) (Client, error) {
	return dialKiteWith(kite.ClientOptions{Targets: []string{addr}})
}

// serveKiteTLS is the "kite" system's server behind TLS 1.3: a
// certificate made at start, the ALPN name Kite's tls transport uses.
func serveKiteTLS(ln net.Listener) (Server, error) {
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	return serveKite(tls.NewListener(ln, &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{core.ALPNProtocol},
	}))
}

// dialKiteTLS dials with Kite's tls transport. Verification is skipped:
// it costs only at the handshake, and the benchmark measures the calls
// after it (the certificate is made fresh in another process).
func dialKiteTLS(addr string, _ int) (Client, error) {
	tr, err := core.NewTLS(core.TLSConfig{InsecureSkipVerify: true, MinVersion: "1.3"})
	if err != nil {
		return nil, err
	}
	return dialKiteWith(core.ClientOptions{
		Targets:   []string{addr},
		Codec:     protocodec.New(),
		Transport: tr,
		Logger:    hclog.NewNullLogger(),
	})
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kitebench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
