package plugin

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// The spitest conformance suites run through the bridge: an
// implementation served out of process must behave as it does compiled
// in. They run against the test implementations and against real
// plugins built from their cmd mains.

// loadBinary loads the plugin main at dir (relative to the module root).
// A plugin that does not build fails the test: a skip would let a broken
// plugin pass CI unnoticed.
func loadBinary(t *testing.T, dir string, kind spi.Kind, name string) spi.Entry {
	t.Helper()
	path, err := buildMain(dir)
	if err != nil {
		t.Fatalf("plugin binary does not build: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, p, err := Load(ctx, Decl{Kind: kind, Name: name, Path: path, SHA256: fileSum(path)}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return e
}

func build[T any](t *testing.T, e spi.Entry, cfg string) T {
	t.Helper()
	v, err := e.New(spi.Config(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, ok := v.(spi.Closer); ok {
			_ = c.Close()
		}
	})
	return v.(T)
}

func TestConformanceRegistry(t *testing.T) {
	t.Run("testplugin-mem", func(t *testing.T) {
		e, _ := loadEntry(t, spi.KindRegistry)
		store := fmt.Sprintf(`{"store":%q}`, t.Name())
		spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
			v, err := e.New(spi.Config(store))
			if err != nil {
				t.Fatal(err)
			}
			return v.(spi.Registry)
		})
	})
	t.Run("registry-local", func(t *testing.T) {
		e := loadBinary(t, "plugins/registry-local/cmd/kite-registry-local", spi.KindRegistry, "local")
		dir := t.TempDir()
		cfg := fmt.Sprintf(`{"dir":%q,"poll_interval":"50ms"}`, filepath.Join(dir, "reg"))
		spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
			v, err := e.New(spi.Config(cfg))
			if err != nil {
				t.Fatal(err)
			}
			return v.(spi.Registry)
		})
	})
}

func TestConformanceBalancer(t *testing.T) {
	cases := []struct{ dir, name string }{
		{"spi/plugin/testdata/testplugin", "wrr"},
		{"plugins/lb-weighted/cmd/kite-balancer-weighted", "weighted"},
		{"plugins/lb-roundrobin/cmd/kite-balancer-round-robin", "round_robin"},
		// lb-hash implements spi.TableBalancer with its ring in the
		// table, so key affinity survives the bridge.
		{"plugins/lb-hash/cmd/kite-balancer-consistent-hash", "consistent_hash"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e spi.Entry
			if c.name == "wrr" {
				e, _ = loadEntry(t, spi.KindBalancer)
			} else {
				e = loadBinary(t, c.dir, spi.KindBalancer, c.name)
			}
			spitest.TestBalancer(t, build[spi.Balancer](t, e, `{}`))
		})
	}
}

func TestConformanceCodec(t *testing.T) {
	e, _ := loadEntry(t, spi.KindCodec)
	c := build[spi.Codec](t, e, `{}`)
	type user struct {
		ID    int64             `json:"id"`
		Name  string            `json:"name"`
		Score float64           `json:"score"`
		Tags  []string          `json:"tags"`
		Attrs map[string]string `json:"attrs"`
		OK    bool              `json:"ok"`
	}
	spitest.TestCodec(t, c, func() any { return new(user) },
		user{ID: 1001, Name: "ann", Score: 1.5, Tags: []string{"a", "b"}, Attrs: map[string]string{"k": "v"}, OK: true},
		&user{ID: -1 << 40, Name: "日本", Tags: []string{}, Attrs: map[string]string{}},
	)
}

func TestConformanceCompressor(t *testing.T) {
	e := loadBinary(t, "plugins/compress-snappy/cmd/kite-compressor-snappy", spi.KindCompressor, "snappy")
	spitest.TestCompressor(t, build[spi.Compressor](t, e, `{}`))
}
