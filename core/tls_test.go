package core

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
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

	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
)

// testCA is a certificate authority made for one test; it writes PEM
// files into a temporary directory.
type testCA struct {
	t    *testing.T
	dir  string
	name string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
}

var serial int64

func nextSerial() *big.Int { serial++; return big.NewInt(serial) }

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	ca := &testCA{t: t, dir: t.TempDir(), name: name, cert: cert, key: key}
	ca.file = ca.write(name+"-ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(name, typ string, der []byte) string {
	p := filepath.Join(ca.dir, name)
	require.NoError(ca.t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	return p
}

// issue signs a leaf certificate for name and returns its cert and key
// files. Server certificates hold 127.0.0.1 and localhost.
func (ca *testCA) issue(name string, server bool, notAfter time.Time) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(ca.t, err)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-2 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(ca.t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(ca.t, err)
	return ca.write(name+".pem", "CERTIFICATE", der), ca.write(name+"-key.pem", "PRIVATE KEY", kder)
}

func (ca *testCA) leaf(name string, server bool) (certFile, keyFile string) {
	return ca.issue(name, server, time.Now().Add(time.Hour))
}

// startTLSServer serves the echo service over tr and returns its address.
func startTLSServer(t *testing.T, tr spi.Transport) (*Server, string) {
	t.Helper()
	srv, err := NewServer(ServerOptions{Catalog: testCatalog(), Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, srv.Register("Echo", newEchoSvc()))
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", tr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return srv, ln.Addr().String()
}

func mustTLS(t *testing.T, cfg TLSConfig) *TLS {
	t.Helper()
	tr, err := NewTLS(cfg)
	require.NoError(t, err)
	return tr
}

// errChain joins the messages of err and every error it wraps: the
// transport's explanation travels as the cause of the call's error.
func errChain(err error) string {
	var parts []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		parts = append(parts, e.Error())
	}
	return strings.Join(parts, " | ")
}

func echoOnce(t *testing.T, c *Client, id int) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var resp EchoResp
	err := c.Call(ctx, "Echo.Echo", &EchoReq{ID: id, Text: "over tls"}, &resp)
	if err == nil {
		require.Equal(t, EchoResp{ID: id, Text: "over tls"}, resp)
	}
	return err
}

func TestTLSUnaryAndStreaming(t *testing.T) {
	ca := newTestCA(t, "kite-test")
	cert, key := ca.leaf("server", true)
	_, addr := startTLSServer(t, mustTLS(t, TLSConfig{CertFile: cert, KeyFile: key}))

	c := newClient(t, ClientOptions{Targets: []string{addr}, Transport: mustTLS(t, TLSConfig{CAFile: ca.file})})
	require.NoError(t, echoOnce(t, c, 1))

	st, err := c.Stream(context.Background(), "Echo.Count")
	require.NoError(t, err)
	require.NoError(t, st.Send(&EchoReq{ID: 100}))
	require.NoError(t, st.CloseSend())
	n := 0
	for {
		var r EchoResp
		err := st.Recv(&r)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.Equal(t, n, r.ID)
		n++
	}
	require.Equal(t, 100, n)

	// A plaintext client reaches the port but gets no service: the
	// server reads its frame as a bad handshake and closes.
	plain := newClient(t, ClientOptions{Targets: []string{addr}})
	require.ErrorIs(t, echoOnce(t, plain, 2), spi.ErrUnavailable)
	require.NoError(t, echoOnce(t, c, 3), "the TLS client is unaffected")
}

func TestTLSNegotiatesVersionAndALPN(t *testing.T) {
	ca := newTestCA(t, "kite-test")
	cert, key := ca.leaf("server", true)
	srvTr := mustTLS(t, TLSConfig{CertFile: cert, KeyFile: key, MinVersion: "1.2"})
	ln, err := srvTr.Listen(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = io.Copy(io.Discard, c) // runs the handshake, then waits for close
			c.Close()
		}
		accepted <- err
	}()

	nc, err := mustTLS(t, TLSConfig{CAFile: ca.file}).Dial(context.Background(), ln.Addr().String())
	require.NoError(t, err)
	state := nc.(*tlsConn).ConnectionState()
	require.Equal(t, uint16(tls.VersionTLS13), state.Version)
	require.Equal(t, ALPNProtocol, state.NegotiatedProtocol)
	require.NoError(t, nc.Close())
	require.NoError(t, <-accepted)
}

func TestMTLSRefusesClientsWithoutAValidCertificate(t *testing.T) {
	ca := newTestCA(t, "kite-test")
	srvCert, srvKey := ca.leaf("server", true)
	_, addr := startTLSServer(t, mustTLS(t, TLSConfig{CertFile: srvCert, KeyFile: srvKey, CAFile: ca.file, ClientAuth: ClientAuthRequireAndVerify}))

	cliCert, cliKey := ca.leaf("client", false)
	good := newClient(t, ClientOptions{Targets: []string{addr},
		Transport: mustTLS(t, TLSConfig{CertFile: cliCert, KeyFile: cliKey, CAFile: ca.file})})
	require.NoError(t, echoOnce(t, good, 1))

	// No certificate at all.
	anon := newClient(t, ClientOptions{Targets: []string{addr}, Transport: mustTLS(t, TLSConfig{CAFile: ca.file})})
	err := echoOnce(t, anon, 2)
	require.ErrorIs(t, err, spi.ErrUnavailable)
	require.Contains(t, errChain(err), "requires mutual TLS", errChain(err))

	// A certificate from an authority the server does not trust.
	rogue := newTestCA(t, "rogue")
	rogueCert, rogueKey := rogue.leaf("intruder", false)
	intruder := newClient(t, ClientOptions{Targets: []string{addr},
		Transport: mustTLS(t, TLSConfig{CertFile: rogueCert, KeyFile: rogueKey, CAFile: ca.file})})
	err = echoOnce(t, intruder, 3)
	require.ErrorIs(t, err, spi.ErrUnavailable)
	require.Contains(t, errChain(err), "refused this client", errChain(err))

	// The server kept serving the client that belongs.
	err = echoOnce(t, good, 4)
	require.NoError(t, err, errChain(err))
	require.NoError(t, echoOnce(t, good, 5))
}

// forcedCert is a client transport that presents its certificate even
// when the server's certificate request names other authorities. A
// crypto/tls client (and so core.TLS) sends no certificate then, so
// without this the server's handling of a foreign certificate would go
// untested.
type forcedCert struct {
	cert tls.Certificate
	ca   *x509.CertPool
}

func (forcedCert) Name() string { return "tls" }
func (forcedCert) Listen(context.Context, string) (net.Listener, error) {
	return nil, errors.New("client only")
}

func (f forcedCert) Dial(ctx context.Context, addr string) (net.Conn, error) {
	d := tls.Dialer{Config: &tls.Config{
		RootCAs: f.ca, MinVersion: tls.VersionTLS13, NextProtos: []string{ALPNProtocol},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &f.cert, nil },
	}}
	return d.DialContext(ctx, "tcp", addr)
}

// Every client_auth mode against each kind of client: none with no
// certificate, one that sends a certificate from an authority the server
// does not trust, one that holds such a certificate but (being crypto/tls)
// offers it only to servers that name its authority, and one with a
// certificate the server's ca signed. Each is accepted or refused exactly
// as crypto/tls's ClientAuthType of the same value says.
func TestTLSClientAuthModes(t *testing.T) {
	ca := newTestCA(t, "kite-test")
	srvCert, srvKey := ca.leaf("server", true)
	cliCert, cliKey := ca.leaf("client", false)
	rogue := newTestCA(t, "rogue")
	rogueCert, rogueKey := rogue.leaf("intruder", false)
	rogueKP, err := tls.LoadX509KeyPair(rogueCert, rogueKey)
	require.NoError(t, err)
	roots, err := loadCAs(ca.file)
	require.NoError(t, err)

	const ok = ""
	for _, tc := range []struct {
		mode    TLSClientAuth
		tlsMode tls.ClientAuthType
		// "" accepted, else what the refusal says
		anon, foreign string
	}{
		{ClientAuthNone, tls.NoClientCert, ok, ok},
		{ClientAuthRequest, tls.RequestClientCert, ok, ok},
		{ClientAuthRequire, tls.RequireAnyClientCert, "requires mutual TLS", ok},
		{ClientAuthVerifyIfGiven, tls.VerifyClientCertIfGiven, ok, "remote error: tls"},
		{ClientAuthRequireAndVerify, tls.RequireAndVerifyClientCert, "requires mutual TLS", "remote error: tls"},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			srvTr := mustTLS(t, TLSConfig{CertFile: srvCert, KeyFile: srvKey, CAFile: ca.file, ClientAuth: tc.mode})
			require.Equal(t, tc.tlsMode, srvTr.server.ClientAuth)
			if tc.mode != ClientAuthNone {
				require.NotNil(t, srvTr.server.ClientCAs, "the certificate request names the ca's authorities")
			}
			_, addr := startTLSServer(t, srvTr)
			check := func(who string, tr spi.Transport, refusal string) {
				t.Helper()
				c := newClient(t, ClientOptions{Targets: []string{addr}, Transport: tr})
				err := echoOnce(t, c, 1)
				if refusal == ok {
					require.NoError(t, err, "%s client: %s", who, errChain(err))
					return
				}
				require.ErrorIs(t, err, spi.ErrUnavailable, "%s client", who)
				require.Contains(t, errChain(err), refusal, "%s client", who)
			}
			check("anonymous", mustTLS(t, TLSConfig{CAFile: ca.file}), tc.anon)
			check("foreign-CA", forcedCert{cert: rogueKP, ca: roots}, tc.foreign)
			// The server names only its ca, so this client sends nothing
			// and fares as the anonymous one; a refusal points it at its
			// certificate.
			held := ok
			if tc.anon != ok {
				held = "check the client certificate against the server's ca"
			}
			check("foreign-CA core.TLS", mustTLS(t, TLSConfig{CertFile: rogueCert, KeyFile: rogueKey, CAFile: ca.file}), held)
			check("valid", mustTLS(t, TLSConfig{CertFile: cliCert, KeyFile: cliKey, CAFile: ca.file}), ok)
		})
	}

	// The modes that do not verify need no ca; then the certificate
	// request names no authority, and a crypto/tls client sends whatever
	// certificate it has.
	for _, mode := range []TLSClientAuth{ClientAuthRequest, ClientAuthRequire} {
		t.Run(mode.String()+" without ca", func(t *testing.T) {
			srvTr := mustTLS(t, TLSConfig{CertFile: srvCert, KeyFile: srvKey, ClientAuth: mode})
			require.Equal(t, tls.ClientAuthType(mode), srvTr.server.ClientAuth)
			require.Nil(t, srvTr.server.ClientCAs)
			_, addr := startTLSServer(t, srvTr)
			c := newClient(t, ClientOptions{Targets: []string{addr},
				Transport: mustTLS(t, TLSConfig{CertFile: rogueCert, KeyFile: rogueKey, CAFile: ca.file})})
			require.NoError(t, echoOnce(t, c, 1))
		})
	}
}

func TestTLSWrongCAFailsClearly(t *testing.T) {
	ca := newTestCA(t, "kite-test")
	cert, key := ca.leaf("server", true)
	_, addr := startTLSServer(t, mustTLS(t, TLSConfig{CertFile: cert, KeyFile: key}))

	other := newTestCA(t, "other")
	c := newClient(t, ClientOptions{Targets: []string{addr}, Transport: mustTLS(t, TLSConfig{CAFile: other.file})})
	err := echoOnce(t, c, 1)
	require.ErrorIs(t, err, spi.ErrUnavailable)
	msg := err.Error()
	require.Contains(t, msg, "not signed by an authority in ca file")
	require.Contains(t, msg, other.file)
	require.Contains(t, msg, "x509: certificate signed by unknown authority")

	// A name the certificate does not hold.
	c2 := newClient(t, ClientOptions{Targets: []string{addr},
		Transport: mustTLS(t, TLSConfig{CAFile: ca.file, ServerName: "api.example.com"})})
	err = echoOnce(t, c2, 2)
	require.ErrorIs(t, err, spi.ErrUnavailable)
	require.Contains(t, err.Error(), `not valid for "api.example.com" (set server_name`)
}

// A failed TLS dial returns a nil net.Conn, not a nil *tlsConn inside
// one: the pool's healer closes any non-nil conn it gets back with an
// error, which panicked on the typed nil (seen in CI, core/client.go heal).
func TestTLSFailedDialReturnsNilConn(t *testing.T) {
	ca := newTestCA(t, "kite-test")
	cert, key := ca.leaf("server", true)
	_, addr := startTLSServer(t, mustTLS(t, TLSConfig{CertFile: cert, KeyFile: key}))
	other := newTestCA(t, "other")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for name, tr := range map[string]*TLS{
		"handshake refused": mustTLS(t, TLSConfig{CAFile: other.file}),
		"nothing listening": mustTLS(t, TLSConfig{CAFile: ca.file}),
	} {
		target := addr
		if name == "nothing listening" {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			target = ln.Addr().String()
			require.NoError(t, ln.Close())
		}
		nc, err := tr.Dial(ctx, target)
		require.Error(t, err, name)
		require.True(t, nc == nil, "%s: Dial returned a non-nil net.Conn (%T) with its error", name, nc)
	}
}

// A client that connects and stays silent must not hold up the accept
// loop: the handshake runs in the connection's reader, not in Accept.
func TestTLSSilentClientDoesNotBlockAccept(t *testing.T) {
	ca := newTestCA(t, "kite-test")
	cert, key := ca.leaf("server", true)
	_, addr := startTLSServer(t, mustTLS(t, TLSConfig{CertFile: cert, KeyFile: key}))
	silent, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer silent.Close()
	c := newClient(t, ClientOptions{Targets: []string{addr}, Transport: mustTLS(t, TLSConfig{CAFile: ca.file})})
	require.NoError(t, echoOnce(t, c, 1))
}

func TestNewTLSErrorsNameTheFile(t *testing.T) {
	ca := newTestCA(t, "kite-test")
	cert, key := ca.leaf("server", true)
	_, otherKey := ca.leaf("other", true)
	expCert, expKey := ca.issue("expired", true, time.Now().Add(-time.Minute))
	missing := filepath.Join(ca.dir, "missing.pem")
	garbage := filepath.Join(ca.dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not pem at all\n"), 0o600))
	badCA := filepath.Join(ca.dir, "bad-ca.pem")
	require.NoError(t, os.WriteFile(badCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), 0o600))

	for _, tc := range []struct {
		name string
		cfg  TLSConfig
		want []string
	}{
		{"missing cert", TLSConfig{CertFile: missing, KeyFile: key}, []string{"reading cert file", missing, "no such file"}},
		{"missing key", TLSConfig{CertFile: cert, KeyFile: missing}, []string{"reading key file", missing}},
		{"cert not pem", TLSConfig{CertFile: garbage, KeyFile: key}, []string{"cert file", garbage, "no PEM CERTIFICATE"}},
		{"key not pem", TLSConfig{CertFile: cert, KeyFile: garbage}, []string{"key file", garbage, "no PEM block"}},
		{"key mismatch", TLSConfig{CertFile: cert, KeyFile: otherKey}, []string{cert, otherKey, "private key does not match"}},
		{"cert without key", TLSConfig{CertFile: cert}, []string{cert, "without a key file"}},
		{"key without cert", TLSConfig{KeyFile: key}, []string{key, "without a cert file"}},
		{"expired", TLSConfig{CertFile: expCert, KeyFile: expKey}, []string{expCert, "expired on"}},
		{"missing ca", TLSConfig{CAFile: missing}, []string{"reading ca file", missing}},
		{"ca not pem", TLSConfig{CAFile: garbage}, []string{"ca file", garbage, "no PEM CERTIFICATE"}},
		{"ca corrupt", TLSConfig{CAFile: badCA}, []string{"ca file", badCA, "certificate 1"}},
		{"client auth without ca", TLSConfig{CertFile: cert, KeyFile: key, ClientAuth: ClientAuthRequireAndVerify}, []string{"client_auth needs a ca file", `"require_and_verify"`}},
		{"verify if given without ca", TLSConfig{CertFile: cert, KeyFile: key, ClientAuth: ClientAuthVerifyIfGiven}, []string{"client_auth needs a ca file", `"verify_if_given"`}},
		{"client auth without cert", TLSConfig{CAFile: ca.file, ClientAuth: ClientAuthRequireAndVerify}, []string{"client_auth is a server setting"}},
		{"request without cert", TLSConfig{ClientAuth: ClientAuthRequest}, []string{"client_auth is a server setting"}},
		{"unknown client auth", TLSConfig{CertFile: cert, KeyFile: key, ClientAuth: 9}, []string{"client_auth 9 is not a mode"}},
		{"bad version", TLSConfig{MinVersion: "1.1"}, []string{`min_version "1.1"`, `"1.2" or "1.3"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTLS(tc.cfg)
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}

	// Dial-only: no certificate, so no listening.
	tr := mustTLS(t, TLSConfig{CAFile: ca.file})
	_, err := tr.Listen(context.Background(), "127.0.0.1:0")
	require.ErrorContains(t, err, "listening needs a certificate")
}

func TestTLSCatalogEntry(t *testing.T) {
	e, ok := spi.Default.Lookup(spi.KindTransport, "tls")
	require.True(t, ok, "core registers the tls transport")
	var names []string
	for _, f := range e.Schema {
		names = append(names, f.Name)
	}
	require.Subset(t, names, []string{"cert", "key", "ca", "server_name", "client_auth", "min_version"})

	ca := newTestCA(t, "kite-test")
	cert, key := ca.leaf("server", true)
	cfg, err := json.Marshal(map[string]any{"cert": cert, "key": key, "ca": ca.file, "client_auth": true, "min_version": "1.2"})
	require.NoError(t, err)
	tr, err := spi.Default.BuildTransport("tls", cfg)
	require.NoError(t, err)
	require.Equal(t, "tls", tr.Name())
	require.Equal(t, TLSConfig{CertFile: cert, KeyFile: key, CAFile: ca.file, ClientAuth: ClientAuthRequireAndVerify, MinVersion: "1.2"}, tr.(*TLS).Config(),
		"client_auth = true, from before it had modes, is require_and_verify")

	// The modes by name, as kite.hcl spells them, in any case; a
	// configuration marshalled from a TLSConfig decodes to the same.
	for _, mode := range []TLSClientAuth{ClientAuthNone, ClientAuthRequest, ClientAuthRequire, ClientAuthVerifyIfGiven, ClientAuthRequireAndVerify} {
		want := TLSConfig{CertFile: cert, KeyFile: key, CAFile: ca.file, ClientAuth: mode}
		cfg, err := json.Marshal(want)
		require.NoError(t, err)
		require.Contains(t, string(cfg), `"client_auth":"`+mode.String()+`"`)
		tr, err := spi.Default.BuildTransport("tls", cfg)
		require.NoError(t, err, mode)
		require.Equal(t, want, tr.(*TLS).Config())
		require.Equal(t, tls.ClientAuthType(mode), tr.(*TLS).server.ClientAuth, mode)
	}
	tr, err = spi.Default.BuildTransport("tls", spi.Config(`{"cert": "`+cert+`", "key": "`+key+`", "client_auth": "Require"}`))
	require.NoError(t, err)
	require.Equal(t, ClientAuthRequire, tr.(*TLS).Config().ClientAuth)
	_, err = spi.Default.BuildTransport("tls", spi.Config(`{"client_auth": "verify"}`))
	require.ErrorContains(t, err, `client_auth "verify" is not a mode: want one of none, request, require, verify_if_given, require_and_verify`)
	_, err = spi.Default.BuildTransport("tls", spi.Config(`{"client_auth": 4}`))
	require.ErrorContains(t, err, "client_auth must be a mode name")

	_, err = spi.Default.BuildTransport("tls", spi.Config(`{"certificate": "x"}`))
	require.ErrorContains(t, err, "certificate", "unknown attributes are refused")
	_, err = spi.Default.BuildTransport("tls", spi.Config(`{"ca": "`+filepath.Join(ca.dir, "nope.pem")+`"}`))
	require.ErrorContains(t, err, "nope.pem")
}
