package stack_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core/stack"
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
