package config

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/kiterpc/kite/spi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCatalog is a catalog of fakes with the names and schemas the tests
// (and the repo's kite.hcl) use. The factories are never called: config
// only reads names and schemas.
func testCatalog() *spi.Catalog {
	cat := &spi.Catalog{}
	nop := func(spi.Config) (any, error) { return nil, nil }
	add := func(kind spi.Kind, name string, schema ...spi.Field) {
		if err := cat.Add(spi.Entry{Kind: kind, Name: name, Schema: schema, New: nop}); err != nil {
			panic(err)
		}
	}
	add(spi.KindRegistry, "local", spi.Field{Name: "dir", Type: spi.TypeString})
	add(spi.KindRegistry, "static", spi.Field{Name: "instances", Type: spi.TypeStringMap})
	add(spi.KindRegistry, "zk",
		spi.Field{Name: "servers", Type: spi.TypeStringList, Required: true},
		spi.Field{Name: "session_timeout", Type: spi.TypeDuration},
		spi.Field{Name: "root", Type: spi.TypeString},
		spi.Field{Name: "retries", Type: spi.TypeNumber},
		spi.Field{Name: "acl", Type: spi.TypeBool},
		spi.Field{Name: "labels", Type: spi.TypeStringMap})
	add(spi.KindBalancer, "weighted")
	add(spi.KindBalancer, "round_robin")
	add(spi.KindBalancer, "consistent_hash", spi.Field{Name: "replicas", Type: spi.TypeNumber})
	add(spi.KindFilter, "recover")
	add(spi.KindFilter, "log", spi.Field{Name: "level", Type: spi.TypeString})
	add(spi.KindFilter, "auth", spi.Field{Name: "token", Type: spi.TypeString, Required: true})
	add(spi.KindCodec, "auto")
	add(spi.KindCodec, "json")
	add(spi.KindCodec, "proto")
	add(spi.KindCompressor, "zstd", spi.Field{Name: "level", Type: spi.TypeNumber})
	add(spi.KindCompressor, "snappy")
	add(spi.KindTransport, "tcp")
	add(spi.KindTransport, "unix")
	add(spi.KindTransport, "tls")
	return cat
}
