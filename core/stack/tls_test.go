package stack_test

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
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kite-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return cert, key
}

func TestTLSBlocks(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	path := writeHCL(t, dir, "kite.hcl", fmt.Sprintf(`
registry "mem" "m" {}
server "echo" {
  listen   = "127.0.0.1:0"
  registry = "m"
  tls {
    cert = %q
    key  = %q
  }
}
client "echo" {
  registry = "m"
  tls {
    ca = %q
  }
}
client "plain" {
  service  = "echo"
  registry = "m"
  timeout  = "500ms"
}
`, cert, key, cert))
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	serving(t, st, "echo", &echo{name: "tls"})
	c, err := st.Client("echo")
	require.NoError(t, err)
	var resp EchoResp
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "secret"}, &resp))
	assert.Equal(t, "tls", resp.Server)

	plain, err := st.Client("plain")
	require.NoError(t, err)
	assert.Error(t, plain.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "x"}, &resp), "a plain-TCP client cannot talk to the TLS server")
}

// pki is a certificate authority made for one test: the CA file, and
// leaves it signs (servers for 127.0.0.1, clients for client auth).
type pki struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	ca   string // the CA certificate file
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	p := &pki{t: t, dir: t.TempDir(), cert: c, key: k}
	p.ca = p.write(name+"-ca.pem", "CERTIFICATE", der)
	return p
}

func (p *pki) write(name, typ string, der []byte) string {
	f := filepath.Join(p.dir, name)
	require.NoError(p.t, os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	return f
}

func (p *pki) leaf(name string, server bool) (cert, key string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(p.t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &k.PublicKey, p.key)
	require.NoError(p.t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(p.t, err)
	return p.write(name+".pem", "CERTIFICATE", der), p.write(name+"-key.pem", "PRIVATE KEY", kder)
}

// forcedCert is a client transport that presents its certificate whatever
// authorities the server's certificate request names (a crypto/tls client
// sends none that they did not sign), and notes whether it was asked.
type forcedCert struct {
	cert   tls.Certificate
	roots  *x509.CertPool
	asked  *atomic.Bool
	dialer net.Dialer
}

func (*forcedCert) Name() string { return "tls" }
func (*forcedCert) Listen(context.Context, string) (net.Listener, error) {
	return nil, errors.New("client only")
}

func (f *forcedCert) Dial(ctx context.Context, addr string) (net.Conn, error) {
	d := tls.Dialer{NetDialer: &f.dialer, Config: &tls.Config{
		RootCAs: f.roots, MinVersion: tls.VersionTLS13, NextProtos: []string{core.ALPNProtocol},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			f.asked.Store(true)
			return &f.cert, nil
		},
	}}
	return d.DialContext(ctx, "tcp", addr)
}

// Every client_auth value kite.hcl accepts, over loopback TLS: a client
// without a certificate, one that sends a certificate from another
// authority, one that holds such a certificate (and, being crypto/tls,
// sends it only to a server that names its authority), and one whose
// certificate the server's ca signed. Each is accepted or refused exactly
// as the mode says.
func TestTLSClientAuthModes(t *testing.T) {
	ca, rogue := newPKI(t, "kite-test"), newPKI(t, "rogue")
	srvCert, srvKey := ca.leaf("server", true)
	cliCert, cliKey := ca.leaf("client", false)
	rogueCert, rogueKey := rogue.leaf("intruder", false)
	rogueKP, err := tls.LoadX509KeyPair(rogueCert, rogueKey)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	const ok = ""
	for _, tc := range []struct {
		mode string // "" leaves client_auth unset: "require_and_verify", as ca is given
		// "" accepted, else what the refusal says
		anon, foreign string
		asked         bool // the server asks for a certificate
	}{
		{"none", ok, ok, false},
		{"request", ok, ok, true},
		{"require", "requires mutual TLS", ok, true},
		{"verify_if_given", ok, "remote error: tls", true},
		{"require_and_verify", "requires mutual TLS", "remote error: tls", true},
		{"", "requires mutual TLS", "remote error: tls", true},
		{"Require_And_Verify", "requires mutual TLS", "remote error: tls", true},
	} {
		name := tc.mode
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			auth := ""
			if tc.mode != "" {
				auth = fmt.Sprintf("client_auth = %q", tc.mode)
			}
			path := writeHCL(t, t.TempDir(), "kite.hcl", fmt.Sprintf(`
registry "mem" "m" {}
server "echo" {
  listen   = "127.0.0.1:0"
  registry = "m"
  tls {
    cert = %q
    key  = %q
    ca   = %q
    %s
  }
}
client "anon" {
  service  = "echo"
  registry = "m"
  timeout  = "5s"
  tls { ca = %[3]q }
}
client "holds-foreign" {
  service  = "echo"
  registry = "m"
  timeout  = "5s"
  tls {
    ca   = %[3]q
    cert = %[5]q
    key  = %[6]q
  }
}
client "valid" {
  service  = "echo"
  registry = "m"
  timeout  = "5s"
  tls {
    ca   = %[3]q
    cert = %[7]q
    key  = %[8]q
  }
}
`, srvCert, srvKey, ca.ca, auth, rogueCert, rogueKey, cliCert, cliKey))
			st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
			require.NoError(t, err)
			defer st.Close()
			in, _ := serving(t, st, "echo", &echo{name: "tls"})

			call := func(who string, c interface {
				Call(context.Context, string, any, any) error
			}, refusal string) {
				t.Helper()
				var resp EchoResp
				err := c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: who}, &resp)
				if refusal == ok {
					require.NoError(t, err, "%s client", who)
					assert.Equal(t, EchoResp{Text: who, Server: "tls"}, resp)
					return
				}
				require.ErrorIs(t, err, spi.ErrUnavailable, "%s client", who)
				require.Contains(t, errChain(err), refusal, "%s client", who)
			}
			for _, c := range []struct{ name, refusal string }{
				{"anon", tc.anon},
				// It sends nothing, so fares as anon, and is told to
				// check its certificate.
				{"holds-foreign", map[bool]string{true: "check the client certificate against the server's ca", false: ok}[tc.anon != ok]},
				{"valid", ok},
			} {
				cl, err := st.Client(c.name)
				require.NoError(t, err)
				hasInstances(t, cl)
				call(c.name, cl, c.refusal)
			}

			var asked atomic.Bool
			forced, err := core.NewClient(core.ClientOptions{
				Targets: []string{in.Addr}, Catalog: testCatalog(t), Logger: quiet,
				Transport: &forcedCert{cert: rogueKP, roots: roots, asked: &asked},
			})
			require.NoError(t, err)
			defer forced.Close()
			call("sends-foreign", forced, tc.foreign)
			assert.Equal(t, tc.asked, asked.Load(), "server asked for a client certificate")
		})
	}
}

// The modes that do not verify need no ca; their certificate request then
// names no authority, so a client sends any certificate it holds.
func TestTLSClientAuthWithoutCA(t *testing.T) {
	ca, rogue := newPKI(t, "kite-test"), newPKI(t, "rogue")
	srvCert, srvKey := ca.leaf("server", true)
	rogueCert, rogueKey := rogue.leaf("intruder", false)
	for _, mode := range []string{"request", "require"} {
		t.Run(mode, func(t *testing.T) {
			path := writeHCL(t, t.TempDir(), "kite.hcl", fmt.Sprintf(`
registry "mem" "m" {}
server "echo" {
  listen   = "127.0.0.1:0"
  registry = "m"
  tls {
    cert        = %q
    key         = %q
    client_auth = %q
  }
}
client "anon" {
  service  = "echo"
  registry = "m"
  timeout  = "5s"
  tls { ca = %q }
}
client "foreign" {
  service  = "echo"
  registry = "m"
  timeout  = "5s"
  tls {
    ca   = %[4]q
    cert = %q
    key  = %q
  }
}
`, srvCert, srvKey, mode, ca.ca, rogueCert, rogueKey))
			st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
			require.NoError(t, err)
			defer st.Close()
			serving(t, st, "echo", &echo{name: "tls"})
			var resp EchoResp
			foreign, err := st.Client("foreign")
			require.NoError(t, err)
			hasInstances(t, foreign)
			require.NoError(t, foreign.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "x"}, &resp))
			anon, err := st.Client("anon")
			require.NoError(t, err)
			hasInstances(t, anon)
			err = anon.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "x"}, &resp)
			if mode == "require" {
				require.ErrorIs(t, err, spi.ErrUnavailable)
				require.Contains(t, errChain(err), "requires mutual TLS")
			} else {
				require.NoError(t, err)
			}
		})
	}
}

// Bad files in a tls block fail building the server or client with an
// error that names the kite.hcl position and the file, whatever the mode.
func TestTLSBlockErrorsNamePosition(t *testing.T) {
	ca := newPKI(t, "kite-test")
	srvCert, srvKey := ca.leaf("server", true)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not pem\n"), 0o600))

	for _, mode := range []string{"none", "request", "require", "verify_if_given", "require_and_verify"} {
		for _, tc := range []struct {
			name, cert, ca string
			want           []string
		}{
			{"missing cert", missing, ca.ca, []string{"reading cert file", missing}},
			{"cert not pem", garbage, ca.ca, []string{"cert file", garbage, "no PEM CERTIFICATE"}},
			{"missing ca", srvCert, missing, []string{"reading ca file", missing}},
			{"ca not pem", srvCert, garbage, []string{"ca file", garbage, "no PEM CERTIFICATE"}},
		} {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				path := writeHCL(t, t.TempDir(), "kite.hcl", fmt.Sprintf(`registry "mem" "m" {}

server "echo" {
  listen   = "127.0.0.1:0"
  registry = "m"
  tls {
    cert        = %q
    key         = %q
    ca          = %q
    client_auth = %q
  }
}
`, tc.cert, srvKey, tc.ca, mode))
				st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
				require.NoError(t, err)
				defer st.Close()
				_, err = st.Server("echo")
				require.Error(t, err)
				require.True(t, strings.HasPrefix(err.Error(), path+":3:1: transport \"tls\": tls: "), err.Error())
				for _, w := range tc.want {
					require.Contains(t, err.Error(), w)
				}
			})
		}
	}

	path := writeHCL(t, dir, "kite.hcl", fmt.Sprintf(`registry "mem" "m" {}
client "echo" {
  registry  = "m"
  transport = "tls"
  tls { ca = %q }
}
`, missing))
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	_, err = st.Client("echo")
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), path+":4:15: transport \"tls\": tls: reading ca file"), err.Error())
	require.Contains(t, err.Error(), missing)
}

// errChain joins the messages of err and every error it wraps: the
// transport's explanation travels as the cause of a call's error.
func errChain(err error) string {
	var parts []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		parts = append(parts, e.Error())
	}
	return strings.Join(parts, " | ")
}

// hasInstances waits until c has its first registry snapshot. A call made
// before it waits for the snapshot itself, but core.Client.conn can miss
// the wake-up when the snapshot lands between its picker check and its
// read of the update channel, and then waits out the call's deadline;
// these tests are about TLS, not that race.
func hasInstances(t *testing.T, c *core.Client) {
	t.Helper()
	require.Eventually(t, func() bool { return len(c.Instances()) > 0 }, 5*time.Second, time.Millisecond,
		"client never saw the server's instance")
}

// min_version from kite.hcl reaches both sides: a server left at the
// default (1.3) refuses a TLS 1.2-only client and one set to "1.2" lets it
// in; a client left at the default refuses a TLS 1.2-only server and one
// set to "1.2" completes the handshake with it.
func TestTLSMinVersion(t *testing.T) {
	ca := newPKI(t, "kite-test")
	srvCert, srvKey := ca.leaf("server", true)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	kp, err := tls.LoadX509KeyPair(srvCert, srvKey)
	require.NoError(t, err)

	// A TLS 1.2-only server that reports each handshake's outcome.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	handshakes := make(chan error, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{kp}, MaxVersion: tls.VersionTLS12})
			handshakes <- tc.Handshake()
			tc.Close()
		}
	}()

	for _, v := range []string{"", "1.2"} {
		name := v
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			minv := ""
			if v != "" {
				minv = fmt.Sprintf("min_version = %q", v)
			}
			path := writeHCL(t, t.TempDir(), "kite.hcl", fmt.Sprintf(`
registry "mem" "m" {}
server "echo" {
  listen   = "127.0.0.1:0"
  registry = "m"
  tls {
    cert = %q
    key  = %q
    %s
  }
}
client "old-server" {
  target  = [%q]
  timeout = "2s"
  retry { max_attempts = 1 }
  tls {
    ca = %q
    %[3]s
  }
}
`, srvCert, srvKey, minv, ln.Addr().String(), ca.ca))
			st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
			require.NoError(t, err)
			defer st.Close()
			in, _ := serving(t, st, "echo", &echo{name: "tls"})
			for len(handshakes) > 0 { // an earlier case's redials
				<-handshakes
			}

			// Server side: a client that speaks at most TLS 1.2.
			d := tls.Dialer{Config: &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12}}
			conn, err := d.DialContext(context.Background(), "tcp", in.Addr)
			if v == "" {
				require.Error(t, err, "the default 1.3 minimum refuses TLS 1.2")
			} else {
				require.NoError(t, err, "min_version = 1.2 accepts TLS 1.2")
				conn.Close()
			}

			// Client side: the TLS 1.2-only server above.
			c, err := st.Client("old-server")
			require.NoError(t, err)
			_ = c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "x"}, &EchoResp{}) // not Kite: fails either way
			select {
			case herr := <-handshakes:
				if v == "" {
					require.Error(t, herr, "the client's default 1.3 minimum refuses a 1.2 server")
				} else {
					require.NoError(t, herr, "the client's min_version = 1.2 completes the handshake")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the client never dialed the TLS 1.2 server")
			}
		})
	}
}
