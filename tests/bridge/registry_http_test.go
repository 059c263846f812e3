package bridge

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kiterpc/kite/plugins/registry-consul/consultest"
	"github.com/kiterpc/kite/plugins/registry-eureka/eurekatest"
	"github.com/kiterpc/kite/plugins/registry-nacos/nacostest"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"

	// Compiled in beside the bridged ones, to check that both modes see
	// the same registry.
	_ "github.com/kiterpc/kite/plugins/registry-consul"
	_ "github.com/kiterpc/kite/plugins/registry-eureka"
)

// httpRegistryCases are the registries whose backends speak HTTP: a real
// server when one is configured, else the package's in-process double,
// which the plugin process reaches over loopback like the real thing.
func httpRegistryCases() []registryCase {
	return []registryCase{
		{bin: "kite-registry-consul", name: "consul", shared: true, cfg: func(t *testing.T) string {
			addr := os.Getenv("KITE_CONSUL_ADDR")
			if addr == "" {
				s := consultest.NewServer(consultest.Options{})
				t.Cleanup(s.Close)
				addr = s.Addr()
			}
			return fmt.Sprintf(`{"address":%q,"check_ttl":"2s","wait":"5s"}`, addr)
		}},
		{bin: "kite-registry-eureka", name: "eureka", shared: true, cfg: func(t *testing.T) string {
			s := eurekatest.NewServer(eurekatest.Options{})
			t.Cleanup(s.Close)
			return fmt.Sprintf(`{"servers":[%q],"renewal_interval":"500ms","lease_duration":"2s","poll_interval":"50ms"}`, s.URL)
		}},
		// Nacos over its v3 client API, found by falling back from v1 on the
		// 410 of a server whose v1 API is switched off.
		{bin: "kite-registry-nacos", name: "nacos", shared: true, cfg: func(t *testing.T) string {
			s := nacostest.NewServer(nacostest.Options{
				V1Disabled: true, UnhealthyAfter: 600 * time.Millisecond, DeleteAfter: 1200 * time.Millisecond,
			})
			t.Cleanup(s.Close)
			return fmt.Sprintf(`{"servers":[%q],"beat_interval":"100ms","poll_interval":"50ms"}`, s.URL)
		}},
	}
}

func TestHTTPRegistries(t *testing.T) {
	for _, c := range httpRegistryCases() {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg(t)
			e := load(t, c.bin, spi.KindRegistry, c.name)
			t.Run("Conformance", func(t *testing.T) {
				spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
					v, err := e.New(spi.Config(cfg))
					if err != nil {
						t.Fatal(err)
					}
					return v.(spi.Registry)
				})
			})
			if c.shared {
				t.Run("MeetsCompiledIn", func(t *testing.T) { testRegistryModesMeet(t, e, c.name, cfg) })
			}
		})
	}
}
