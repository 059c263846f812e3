package polyglot

import (
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
