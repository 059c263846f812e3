package stack

import (
	"encoding/json"
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/spi"
)

// transport builds the named transport from the catalog. For "tls" the
// configuration is the server's or client's own tls block, handed to the
// catalog's "tls" transport (core.TLS) as its configuration.
func (st *Stack) transport(name string, stls *config.ServerTLS, ctls *config.ClientTLS, at hcl.Range) (spi.Transport, error) {
	var cfg spi.Config
	if name == "tls" {
		if stls == nil && ctls == nil {
			return nil, fmt.Errorf("%s: transport \"tls\" needs a tls block", pos(at))
		}
		b, err := json.Marshal(tlsConfig(stls, ctls))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pos(at), err)
		}
		cfg = b
	}
	tr, err := st.cat.BuildTransport(name, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pos(at), err)
	}
	return tr, nil
}

// tlsConfig is a server's (stls) or client's (ctls) tls block as the
// tls transport's configuration.
func tlsConfig(stls *config.ServerTLS, ctls *config.ClientTLS) core.TLSConfig {
	if stls != nil {
		// config has already turned client_auth into a
		// tls.ClientAuthType, whose values TLSClientAuth shares.
		return core.TLSConfig{
			CertFile:   stls.Cert,
			KeyFile:    stls.Key,
			CAFile:     stls.CA,
			ClientAuth: core.TLSClientAuth(stls.ClientAuth),
			MinVersion: stls.MinVersion,
		}
	}
	return core.TLSConfig{
		CAFile:             ctls.CA,
		CertFile:           ctls.Cert,
		KeyFile:            ctls.Key,
		ServerName:         ctls.ServerName,
		InsecureSkipVerify: ctls.InsecureSkipVerify,
		MinVersion:         ctls.MinVersion,
	}
}
