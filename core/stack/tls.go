package stack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/spi"
)

// transport builds the named transport. For "tls" the configuration is
// the server's or client's own tls block: it is handed to the catalog's
// "tls" transport (core.TLS) when that can express it, and otherwise
// (no such entry, or a client_auth mode it lacks) a crypto/tls transport
// is assembled here over TCP.
func (st *Stack) transport(name string, stls *config.ServerTLS, ctls *config.ClientTLS, at hcl.Range) (spi.Transport, error) {
	if name != "tls" {
		tr, err := st.cat.BuildTransport(name, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pos(at), err)
		}
		return tr, nil
	}
	if stls == nil && ctls == nil {
		return nil, fmt.Errorf("%s: transport \"tls\" needs a tls block", pos(at))
	}
	if _, ok := st.cat.Lookup(spi.KindTransport, "tls"); ok {
		if cfg, ok := catalogTLSConfig(stls, ctls); ok {
			tr, err := st.cat.BuildTransport("tls", cfg)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", pos(at), err)
			}
			return tr, nil
		}
	}
	var (
		cfg *tls.Config
		err error
	)
	if stls != nil {
		cfg, err = serverTLSConfig(stls)
	} else {
		cfg, err = clientTLSConfig(ctls)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pos(at), err)
	}
	return tlsTransport{cfg: cfg}, nil
}

// catalogTLSConfig is the tls block as the catalog "tls" transport's
// configuration; ok is false for client_auth modes it does not offer.
func catalogTLSConfig(stls *config.ServerTLS, ctls *config.ClientTLS) (spi.Config, bool) {
	m := map[string]any{}
	if stls != nil {
		switch stls.ClientAuth {
		case tls.NoClientCert:
		case tls.RequireAndVerifyClientCert:
			m["client_auth"] = true
		default:
			return nil, false
		}
		m["cert"], m["key"] = stls.Cert, stls.Key
		if stls.CA != "" {
			m["ca"] = stls.CA
		}
	} else {
		for k, v := range map[string]string{"ca": ctls.CA, "cert": ctls.Cert, "key": ctls.Key, "server_name": ctls.ServerName} {
			if v != "" {
				m[k] = v
			}
		}
		if ctls.InsecureSkipVerify {
			m["insecure_skip_verify"] = true
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, false
	}
	return spi.Config(b), true
}

func serverTLSConfig(c *config.ServerTLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("tls: loading cert %s and key %s: %w", c.Cert, c.Key, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: c.ClientAuth, MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		pool, err := certPool(c.CA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
	}
	return cfg, nil
}

func clientTLSConfig(c *config.ClientTLS) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in from kite.hcl
	if c.CA != "" {
		pool, err := certPool(c.CA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if c.Cert != "" || c.Key != "" {
		cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("tls: loading client cert %s and key %s: %w", c.Cert, c.Key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func certPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls: reading CA %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// tlsTransport is TCP with TLS on top.
type tlsTransport struct{ cfg *tls.Config }

func (tlsTransport) Name() string { return "tls" }

func (t tlsTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	ln, err := core.TCP{}.Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, t.cfg), nil
}

func (t tlsTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	cfg := t.cfg
	if cfg.ServerName == "" {
		// Verify against the dialled host, as net/http does.
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
	}
	d := tls.Dialer{Config: cfg}
	return d.DialContext(ctx, "tcp", addr)
}
