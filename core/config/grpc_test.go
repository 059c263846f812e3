package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/spi"
)

func grpcCatalog() *spi.Catalog {
	cat := testCatalog()
	if err := cat.Add(spi.Entry{Kind: spi.KindTransport, Name: "grpc", New: func(spi.Config) (any, error) { return nil, nil }}); err != nil {
		panic(err)
	}
	return cat
}

func TestGRPCBlocks(t *testing.T) {
	src := `
server "s" {
  listen = "127.0.0.1:0"
  codec  = "proto"
  grpc {
    listen      = "127.0.0.1:9090"
    max_message = "1MiB"
    reflection  = false
  }
}
server "plain" {
  listen = "127.0.0.1:0"
  codec  = "proto"
}
client "c" {
  target = "127.0.0.1:50051"
  codec  = "proto"
  grpc {
    package  = "helloworld"
    packages = { Other = "other.v1" }
  }
}
`
	f, diags := Parse([]byte(src), "test.hcl", grpcCatalog())
	require.False(t, diags.HasErrors(), diags.Error())
	s, _ := f.Server("s")
	require.NotNil(t, s.GRPC)
	assert.Equal(t, ServerGRPC{Listen: "127.0.0.1:9090", MaxMessage: 1 << 20, Health: true, Reflection: false}, *s.GRPC)
	p, _ := f.Server("plain")
	assert.Nil(t, p.GRPC)
	c, _ := f.Client("c")
	require.NotNil(t, c.GRPC)
	assert.Equal(t, "grpc", c.Transport)
	assert.Equal(t, "helloworld", c.GRPC.Package)
	assert.Equal(t, map[string]string{"Other": "other.v1"}, c.GRPC.Packages)
}

func TestGRPCBlockErrorsNameFileLineCol(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`server "s" {
  listen = "127.0.0.1:0"
  codec  = "proto"
  grpc {
    listen = "nope"
  }
}`, `test.hcl:5:14: error: Invalid address`},
		{`server "s" {
  listen = "127.0.0.1:0"
  codec  = "proto"
  grpc { max_message = "0" }
}`, `test.hcl:4:24: error: Value out of range`},
		{`server "s" {
  listen = "127.0.0.1:0"
  codec  = "proto"
  grpc { colour = "blue" }
}`, `test.hcl:4:10: error: Unsupported argument`},
		{`client "c" {
  target    = "127.0.0.1:1"
  codec     = "proto"
  transport = "tcp"
  grpc { package = "p" }
}`, `test.hcl:4:15: error: gRPC needs the grpc transport`},
	} {
		_, diags := Parse([]byte(tc.src), "test.hcl", grpcCatalog())
		require.True(t, diags.HasErrors(), tc.src)
		var b strings.Builder
		_ = FormatDiagnostics(&b, diags, Sources("test.hcl", []byte(tc.src)))
		assert.Contains(t, b.String(), tc.want, "source:\n%s", tc.src)
	}
}

// TestGRPCConfigDoc: docs/CONFIG.md documents every attribute of the grpc
// blocks (as TestConfigDocCoversEverything does for the others).
func TestGRPCConfigDoc(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "CONFIG.md"))
	require.NoError(t, err)
	for sec, schema := range map[string]*hcl.BodySchema{"server.grpc": serverGRPCSchema, "client.grpc": clientGRPCSchema} {
		body := regexp.MustCompile("(?ms)^#+ `" + regexp.QuoteMeta(sec) + "`.*?(\n#|\\z)").Find(doc)
		if !assert.NotNil(t, body, "docs/CONFIG.md has no section headed `%s`", sec) {
			continue
		}
		for _, a := range schema.Attributes {
			assert.Contains(t, string(body), "| `"+a.Name+"` |", "section %s lacks attribute %s", sec, a.Name)
		}
	}
}

// TestClientGRPCWithTLS: a client with grpc and tls blocks calls gRPC over
// TLS: the transport stays "grpc" and the tls block is kept, with its
// paths resolved as for the tls transport; bad values in it name
// file:line:col.
func TestClientGRPCWithTLS(t *testing.T) {
	src := `
client "c" {
  target = "127.0.0.1:50051"
  codec  = "proto"
  grpc { package = "helloworld" }
  tls {
    ca          = "certs/ca.pem"
    cert        = "certs/client.pem"
    key         = "certs/client.key"
    server_name = "greeter.internal"
    min_version = "1.2"
  }
}
`
	f, diags := Parse([]byte(src), "/etc/kite/test.hcl", grpcCatalog())
	require.False(t, diags.HasErrors(), diags.Error())
	c, _ := f.Client("c")
	assert.Equal(t, "grpc", c.Transport)
	require.NotNil(t, c.GRPC)
	require.NotNil(t, c.TLS)
	assert.Equal(t, ClientTLS{CA: "/etc/kite/certs/ca.pem", Cert: "/etc/kite/certs/client.pem", Key: "/etc/kite/certs/client.key",
		ServerName: "greeter.internal", MinVersion: "1.2"}, *c.TLS)

	for _, tc := range []struct{ src, want string }{
		{`client "c" {
  target = "127.0.0.1:1"
  codec  = "proto"
  grpc { package = "p" }
  tls {
    min_version = "1.1"
  }
}`, `test.hcl:6:19: error: Invalid min_version`},
		{`client "c" {
  target = "127.0.0.1:1"
  codec  = "proto"
  grpc { package = "p" }
  tls { cert = "c.pem" }
}`, `test.hcl:5:16: error: Incomplete client certificate`},
		{`client "c" {
  target    = "127.0.0.1:1"
  codec     = "proto"
  transport = "tls"
  grpc { package = "p" }
  tls { ca = "ca.pem" }
}`, `test.hcl:4:15: error: gRPC needs the grpc transport`},
	} {
		_, diags := Parse([]byte(tc.src), "test.hcl", grpcCatalog())
		require.True(t, diags.HasErrors(), tc.src)
		var b strings.Builder
		_ = FormatDiagnostics(&b, diags, Sources("test.hcl", []byte(tc.src)))
		assert.Contains(t, b.String(), tc.want, "source:\n%s", tc.src)
	}
}
