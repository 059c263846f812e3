package core

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/spi"
)

// ALPNProtocol is the application protocol Kite offers in the TLS
// handshake. A Kite client that reaches a TLS server speaking something
// else (an HTTPS endpoint that negotiates ALPN) fails the handshake with a
// clear "no application protocol" error instead of exchanging frames with
// it.
const ALPNProtocol = "kite/1"

// ALPNGRPC is the application protocol gRPC clients offer over TLS
// (HTTP/2); a Kite server accepts it besides ALPNProtocol.
const ALPNGRPC = "h2"

// TLSConfig configures the tls transport. The JSON names are those of the
// kite.hcl attributes.
type TLSConfig struct {
	// CertFile and KeyFile hold a PEM certificate chain and its private
	// key. A server needs them; a client presents them when the server
	// asks for a certificate (mutual TLS).
	CertFile string `json:"cert"`
	KeyFile  string `json:"key"`
	// CAFile holds the PEM certificates of the authorities to trust: a
	// client verifies the server against them (the system roots when
	// empty); a server with ClientAuth verifies client certificates
	// against them.
	CAFile string `json:"ca"`
	// ServerName is the name a client expects in the server's
	// certificate; empty means the host part of the dialled address.
	ServerName string `json:"server_name"`
	// ClientAuth is what a server asks of client certificates (mutual
	// TLS); the zero value asks for none. The modes that verify need
	// CAFile.
	ClientAuth TLSClientAuth `json:"client_auth"`
	// MinVersion is "1.2" or "1.3"; empty means "1.3".
	MinVersion string `json:"min_version"`
	// InsecureSkipVerify makes a client accept any server certificate.
	// Anyone on the path can then read and change calls: local testing
	// only.
	InsecureSkipVerify bool `json:"insecure_skip_verify"`
}

// TLSClientAuth is a server's policy for client certificates. Its values
// are crypto/tls's ClientAuthType, so a tls.ClientAuthType converts to it
// directly; in JSON (and kite.hcl) it is one of the mode names below.
type TLSClientAuth tls.ClientAuthType

// The client_auth modes, named as in kite.hcl.
const (
	// ClientAuthNone asks for no certificate ("none").
	ClientAuthNone = TLSClientAuth(tls.NoClientCert)
	// ClientAuthRequest asks for a certificate but accepts clients
	// without one, and does not verify one that is sent ("request").
	ClientAuthRequest = TLSClientAuth(tls.RequestClientCert)
	// ClientAuthRequire refuses clients without a certificate but does
	// not verify it ("require").
	ClientAuthRequire = TLSClientAuth(tls.RequireAnyClientCert)
	// ClientAuthVerifyIfGiven accepts clients without a certificate and
	// refuses those whose certificate CAFile does not verify
	// ("verify_if_given").
	ClientAuthVerifyIfGiven = TLSClientAuth(tls.VerifyClientCertIfGiven)
	// ClientAuthRequireAndVerify refuses clients without a certificate
	// signed by CAFile ("require_and_verify").
	ClientAuthRequireAndVerify = TLSClientAuth(tls.RequireAndVerifyClientCert)
)

var clientAuthNames = [...]string{
	ClientAuthNone:             "none",
	ClientAuthRequest:          "request",
	ClientAuthRequire:          "require",
	ClientAuthVerifyIfGiven:    "verify_if_given",
	ClientAuthRequireAndVerify: "require_and_verify",
}

// String returns the mode's kite.hcl name.
func (a TLSClientAuth) String() string {
	if a >= 0 && int(a) < len(clientAuthNames) {
		return clientAuthNames[a]
	}
	return fmt.Sprintf("TLSClientAuth(%d)", int(a))
}

// verifies reports whether the mode checks certificates against CAFile.
func (a TLSClientAuth) verifies() bool {
	return a == ClientAuthVerifyIfGiven || a == ClientAuthRequireAndVerify
}

// MarshalText implements encoding.TextMarshaler: the mode's name.
func (a TLSClientAuth) MarshalText() ([]byte, error) {
	if a < 0 || int(a) >= len(clientAuthNames) {
		return nil, fmt.Errorf("tls: client_auth %d is not a mode", int(a))
	}
	return []byte(clientAuthNames[a]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler: a mode's name, in
// any case, as kite.hcl accepts it.
func (a *TLSClientAuth) UnmarshalText(b []byte) error {
	s := strings.ToLower(string(b))
	for i, n := range clientAuthNames {
		if s == n {
			*a = TLSClientAuth(i)
			return nil
		}
	}
	return fmt.Errorf("tls: client_auth %q is not a mode: want one of %s", b, strings.Join(clientAuthNames[:], ", "))
}

// UnmarshalJSON takes a mode name, or a boolean as the field was before
// it had modes: true is "require_and_verify", false "none".
func (a *TLSClientAuth) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true":
		*a = ClientAuthRequireAndVerify
		return nil
	case "false":
		*a = ClientAuthNone
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("tls: client_auth must be a mode name such as \"require_and_verify\": %w", err)
	}
	return a.UnmarshalText([]byte(s))
}

// TLS is the TLS transport: TCP with TLS 1.2 or 1.3 on top, optionally
// mutual. It implements spi.Transport; one value serves both Listen (when
// it has a certificate) and Dial.
//
// The server side performs the handshake on the connection's first read,
// in the connection's own reader goroutine, so a slow or silent client
// never holds up the accept loop; the server's handshake timeout closes
// connections whose first frame does not arrive in time, handshake
// included.
type TLS struct {
	cfg    TLSConfig
	cert   *tls.Certificate // nil without CertFile/KeyFile
	server *tls.Config      // nil without a certificate: cannot listen
	client *tls.Config
}

// NewTLS loads and checks the files named by cfg. Errors name the file
// and say what is wrong with it.
func NewTLS(cfg TLSConfig) (*TLS, error) {
	minVersion, err := parseTLSVersion(cfg.MinVersion)
	if err != nil {
		return nil, err
	}
	t := &TLS{cfg: cfg}
	switch {
	case cfg.CertFile != "" && cfg.KeyFile == "":
		return nil, fmt.Errorf("tls: cert file %q given without a key file: set key too", cfg.CertFile)
	case cfg.CertFile == "" && cfg.KeyFile != "":
		return nil, fmt.Errorf("tls: key file %q given without a cert file: set cert too", cfg.KeyFile)
	case cfg.CertFile != "":
		if t.cert, err = loadKeyPair(cfg.CertFile, cfg.KeyFile); err != nil {
			return nil, err
		}
	}
	var pool *x509.CertPool
	if cfg.CAFile != "" {
		if pool, err = loadCAs(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	if cfg.ClientAuth != ClientAuthNone {
		if _, err := cfg.ClientAuth.MarshalText(); err != nil {
			return nil, err
		}
		if t.cert == nil {
			return nil, errors.New("tls: client_auth is a server setting, and a server needs cert and key")
		}
		if pool == nil && cfg.ClientAuth.verifies() {
			return nil, fmt.Errorf("tls: client_auth needs a ca file: %q verifies client certificates against the authorities in it", cfg.ClientAuth)
		}
	}

	t.client = &tls.Config{
		MinVersion:         minVersion,
		RootCAs:            pool, // nil: the system roots
		ServerName:         cfg.ServerName,
		InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // opt-in, documented as testing only
		NextProtos:         []string{ALPNProtocol},
	}
	if t.cert != nil {
		t.client.Certificates = []tls.Certificate{*t.cert}
		t.server = &tls.Config{
			MinVersion:   minVersion,
			Certificates: []tls.Certificate{*t.cert},
			// Kite clients offer only kite/1 and get it. "h2" lets gRPC
			// clients over TLS reach a server that serves gRPC
			// (EnableGRPC); one that does not answers them with an HTTP/2
			// GOAWAY saying so (grpc.go).
			NextProtos: []string{ALPNProtocol, ALPNGRPC},
		}
		if cfg.ClientAuth != ClientAuthNone {
			t.server.ClientAuth = tls.ClientAuthType(cfg.ClientAuth)
			// The modes that do not verify still name these authorities
			// in the certificate request, so clients can pick a
			// certificate.
			t.server.ClientCAs = pool
		}
	}
	return t, nil
}

func parseTLSVersion(s string) (uint16, error) {
	switch s {
	case "", "1.3":
		return tls.VersionTLS13, nil
	case "1.2":
		return tls.VersionTLS12, nil
	}
	return 0, fmt.Errorf("tls: min_version %q is not supported: want \"1.2\" or \"1.3\"", s)
}

func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tls: reading cert file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: reading key file: %w", err)
	}
	if block, _ := pem.Decode(certPEM); block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("tls: cert file %q holds no PEM CERTIFICATE block", certFile)
	}
	if block, _ := pem.Decode(keyPEM); block == nil {
		return nil, fmt.Errorf("tls: key file %q holds no PEM block", keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls: cert file %q with key file %q: %w", certFile, keyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls: cert file %q: %w", certFile, err)
		}
	}
	// An expired certificate is refused by every peer; say so now, not
	// as a handshake failure on the other side.
	if now := time.Now(); now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("tls: the certificate in %q (%s) expired on %s",
			certFile, leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

func loadCAs(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls: reading ca file: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tls: ca file %q: certificate %d: %w", file, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("tls: ca file %q holds no PEM CERTIFICATE block", file)
	}
	return pool, nil
}

// Name implements spi.Transport.
func (*TLS) Name() string { return "tls" }

// Config returns the configuration t was built from.
func (t *TLS) Config() TLSConfig { return t.cfg }

// Listen implements spi.Transport: a TCP listener whose connections speak
// TLS, asking for client certificates as ClientAuth says.
func (t *TLS) Listen(ctx context.Context, addr string) (net.Listener, error) {
	if t.server == nil {
		return nil, errors.New("tls: listening needs a certificate: set cert and key")
	}
	ln, err := TCP{}.Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &tlsListener{Listener: ln, cfg: t.server}, nil
}

// Dial implements spi.Transport: it connects and completes the handshake
// within ctx, verifying the server's certificate.
func (t *TLS) Dial(ctx context.Context, addr string) (net.Conn, error) {
	tc, err := t.dial(ctx, addr, nil)
	if err != nil {
		// Not tc itself: a nil *tlsConn in a net.Conn is not a nil
		// net.Conn, and callers close a non-nil conn they get back.
		return nil, err
	}
	return tc, nil
}

// dial is Dial offering protos by ALPN instead of ALPNProtocol when
// protos is not nil (the grpc transport offers ALPNGRPC).
func (t *TLS) dial(ctx context.Context, addr string, protos []string) (*tlsConn, error) {
	tc := &tlsConn{peer: addr}
	cfg := t.client
	if protos != nil {
		cfg = cfg.Clone()
		cfg.NextProtos = protos
	}
	if t.cert == nil {
		// Without a certificate of our own, note when the server asks for
		// one: if it then refuses the connection, the error can say why.
		if protos == nil {
			cfg = cfg.Clone()
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			tc.certRequested.Store(true)
			return &tls.Certificate{}, nil // send none; the server decides
		}
	}
	d := tls.Dialer{Config: cfg}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, t.explainDial(addr, err)
	}
	tc.Conn = nc.(*tls.Conn)
	return tc, nil
}

// explainDial adds what to check to a failed dial's error. Errors from
// the TCP connect itself are returned as they are.
func (t *TLS) explainDial(addr string, err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	trusted := "the system roots"
	if t.cfg.CAFile != "" {
		trusted = fmt.Sprintf("ca file %q", t.cfg.CAFile)
	}
	var unknownCA x509.UnknownAuthorityError
	var badName x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Errorf("tls handshake with %s: the server's certificate is not signed by an authority in %s: %w", addr, trusted, err)
	case errors.As(err, &badName):
		return fmt.Errorf("tls handshake with %s: the server's certificate is not valid for %q (set server_name to a name it holds): %w", addr, badName.Host, err)
	case errors.As(err, &invalid):
		return fmt.Errorf("tls handshake with %s: the server's certificate is invalid: %w", addr, err)
	}
	return fmt.Errorf("tls handshake with %s: %w", addr, err)
}

type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

// Accept returns the connection without doing the handshake (see TLS).
func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsConn{Conn: tls.Server(c, l.cfg), server: true, peer: c.RemoteAddr().String()}, nil
}

// tlsConn adds to errors what the bare crypto/tls error leaves out: on
// the server, that the handshake failed and with whom; on the client,
// that the server refused this client after the handshake. In TLS 1.3 a
// client's handshake completes before the server has checked the client
// certificate, so a refusal arrives on the first read, not in Dial.
type tlsConn struct {
	*tls.Conn
	server bool
	peer   string
	// Client side: the server asked for a certificate and we had none.
	certRequested atomic.Bool
	// A read returned application data: the peer accepted us.
	gotData atomic.Bool
}

func (c *tlsConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.gotData.Load() {
		c.gotData.Store(true)
	}
	if err != nil {
		err = c.explain(err)
	}
	return n, err
}

func (c *tlsConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		err = c.explain(err)
	}
	return n, err
}

func (c *tlsConn) explain(err error) error {
	// io.EOF is compared by identity in the io package; a close we asked
	// for is no news.
	if err == io.EOF || errors.Is(err, net.ErrClosed) {
		return err
	}
	if c.server {
		if !c.Conn.ConnectionState().HandshakeComplete {
			return fmt.Errorf("tls handshake with client %s: %w", c.peer, err)
		}
		return err
	}
	if c.gotData.Load() {
		return err
	}
	if c.certRequested.Load() {
		return fmt.Errorf("tls: %s refused this client, which has no certificate to present: "+
			"the server requires mutual TLS, set cert and key: %w", c.peer, err)
	}
	// crypto/tls reports an alert from the peer as a net.OpError with Op
	// "remote error".
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return fmt.Errorf("tls: %s refused this client after the handshake (check the client certificate against the server's ca): %w", c.peer, err)
	}
	return err
}

func init() {
	spi.Register(spi.Entry{
		Kind: spi.KindTransport, Name: "tls", Version: "1",
		Doc: "TLS 1.2/1.3 over TCP, optionally mutual (client certificates)",
		Schema: spi.Schema{
			{Name: "cert", Type: spi.TypeString, Doc: "PEM certificate chain file; a server needs it, a client presents it for mutual TLS"},
			{Name: "key", Type: spi.TypeString, Doc: "PEM private key file of cert"},
			{Name: "ca", Type: spi.TypeString, Doc: "PEM file of trusted authorities: a client verifies the server with it (default: system roots), a server with client_auth verifies clients"},
			{Name: "server_name", Type: spi.TypeString, Doc: "name expected in the server certificate (default: the dialled host)"},
			{Name: "client_auth", Type: spi.TypeString, Doc: `server: what to ask of client certificates (mutual TLS): "none" (default), "request", "require", "verify_if_given" or "require_and_verify"; the verifying modes need ca`},
			{Name: "min_version", Type: spi.TypeString, Doc: `lowest TLS version accepted, "1.2" or "1.3" (default "1.3")`},
			{Name: "insecure_skip_verify", Type: spi.TypeBool, Doc: "client: accept any server certificate (testing only); default false"},
		},
		New: func(cfg spi.Config) (any, error) {
			var c TLSConfig
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
			return NewTLS(c)
		},
	})
}
