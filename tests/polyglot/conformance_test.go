package polyglot

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// headerSuite drives the header filter: a server-side call needs the
// header (Prepare adds it); one without it is refused Unauthenticated.
func headerSuite(f spi.Filter) spitest.FilterSuite {
	return spitest.FilterSuite{
		Filter: f,
		Prepare: func(call *spi.Call) {
			if call.Side == spi.ServerSide {
				call.Meta.Set("x-tenant", "blue")
			}
		},
		Reject:     func(call *spi.Call) { call.Side = spi.ServerSide },
		RejectCode: spi.Unauthenticated,
	}
}

const headerConfig = `{"header":"x-tenant","value":"blue","count_trailer":"x-header-calls"}`

func TestPythonFilterConformance(t *testing.T) {
	e, _ := load(t, pyDecl(t, spi.KindFilter, "header", example(t, "header_filter.py")))
	if len(e.Schema) != 4 || e.Schema[0].Name != "header" || !e.Schema[0].Required {
		t.Fatalf("schema = %+v", e.Schema)
	}
	headerSuite(build[spi.Filter](t, e, headerConfig)).Run(t)
}

func TestPythonRegistryConformance(t *testing.T) {
	e, _ := load(t, pyDecl(t, spi.KindRegistry, "jsonfile", example(t, "json_registry.py")))
	cfg := fmt.Sprintf(`{"file":%q,"poll_interval":"50ms"}`, filepath.Join(t.TempDir(), "registry.json"))
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		v, err := e.New(spi.Config(cfg))
		if err != nil {
			t.Fatal(err)
		}
		return v.(spi.Registry)
	})
}

// TestPythonBalancerConformance: the Python smooth weighted round-robin
// answers picking tables; the host's pickers over them pass the balancer
// suite, and one period follows the weights exactly.
func TestPythonBalancerConformance(t *testing.T) {
	e, _ := load(t, pyDecl(t, spi.KindBalancer, "py_weighted", example(t, "wrr_balancer.py")))
	b := build[spi.Balancer](t, e, `{}`)
	if b.Name() != "py_weighted" {
		t.Fatalf("Name() = %q", b.Name())
	}
	spitest.TestBalancer(t, b)

	ins := []spi.Instance{
		{Service: "s", Addr: "127.0.0.1:1", Weight: 10},
		{Service: "s", Addr: "127.0.0.1:2", Weight: 30},
		{Service: "s", Addr: "127.0.0.1:3", Weight: 60},
	}
	p := b.Build(ins)
	got := map[string]int{}
	for range 10 * 10 { // ten periods of 10 (weights reduced by 10)
		r, err := p.Pick(context.Background(), spi.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		got[r.Instance.Addr]++
	}
	if got["127.0.0.1:1"] != 10 || got["127.0.0.1:2"] != 30 || got["127.0.0.1:3"] != 60 {
		t.Fatalf("100 picks = %v, want 10/30/60 by weight", got)
	}
}

// TestPythonCompressorConformance: zlib in Python through the bridge
// passes the compressor suite (round trips up to 1 MiB, max size, zip
// bomb, truncated and corrupt bodies, concurrency).
func TestPythonCompressorConformance(t *testing.T) {
	e, _ := load(t, pyDecl(t, spi.KindCompressor, "pyzlib", example(t, "zlib_compressor.py")))
	c := build[spi.Compressor](t, e, `{"level":6}`)
	if c.Name() != "pyzlib" || c.ID() != 200 {
		t.Fatalf("compressor %q id %d, want pyzlib 200", c.Name(), c.ID())
	}
	spitest.TestCompressor(t, c)
}

// codecUser is a typical request body for the codec suite.
type codecUser struct {
	ID    int64             `json:"id"`
	Name  string            `json:"name"`
	Score float64           `json:"score"`
	Tags  []string          `json:"tags"`
	Attrs map[string]string `json:"attrs"`
	OK    bool              `json:"ok"`
	Raw   []byte            `json:"raw,omitempty"`
}

// TestPythonCodecConformance: a JSON codec in Python through the bridge
// passes the codec suite.
func TestPythonCodecConformance(t *testing.T) {
	e, _ := load(t, pyDecl(t, spi.KindCodec, "pyjson", example(t, "json_codec.py")))
	c := build[spi.Codec](t, e, `{}`)
	if c.Name() != "pyjson" || c.ID() != 201 {
		t.Fatalf("codec %q id %d, want pyjson 201", c.Name(), c.ID())
	}
	spitest.TestCodec(t, c, func() any { return new(codecUser) },
		codecUser{ID: 1001, Name: "ann", Score: 1.5, Tags: []string{"a", "b"}, Attrs: map[string]string{"k": "v"}, OK: true, Raw: []byte{0, 1, 0xff}},
		&codecUser{ID: -1 << 40, Name: "日本 <&> \u2028", Tags: []string{}, Attrs: map[string]string{}},
		codecUser{ID: 1<<53 - 1, Score: -0.25},
	)
}
