package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/plugins/registry-nacos/nacostest"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"

	// Compiled in beside the bridged ones, to check that both modes see
	// the same registry.
	_ "github.com/kiterpc/kite/plugins/registry-etcd"
	_ "github.com/kiterpc/kite/plugins/registry-local"
	_ "github.com/kiterpc/kite/plugins/registry-nacos"
	_ "github.com/kiterpc/kite/plugins/registry-zk"
)

func unique(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// registryCase is one registry plugin and a configuration for it; cfg
// returns "" (after skipping the test) when the backend is absent.
type registryCase struct {
	bin, name string
	cfg       func(t *testing.T) string
	// shared reports whether two registries built from cfg, even in two
	// processes, see one store (so compiled-in and bridged meet).
	shared bool
}

func registryCases() []registryCase {
	return []registryCase{
		{bin: "kite-registry-local", name: "local", shared: true, cfg: func(t *testing.T) string {
			return fmt.Sprintf(`{"dir":%q,"poll_interval":"50ms"}`, filepath.Join(t.TempDir(), "reg"))
		}},
		// A static group lives in the memory of one process: the bridged
		// registries share it inside the plugin, not with the host.
		{bin: "kite-registry-static", name: "static", cfg: func(t *testing.T) string {
			return fmt.Sprintf(`{"group":%q}`, unique("bridge-"))
		}},
		{bin: "kite-registry-zk", name: "zk", shared: true, cfg: func(t *testing.T) string {
			addr := testkit.Env(t, "KITE_ZK_ADDR", "run `bash scripts/services.sh up && source .kite/services.env` (make test does)")
			root := "/" + unique("kite-bridge-")
			t.Cleanup(func() { testkit.DeleteZKTree(t, addr, root) })
			return fmt.Sprintf(`{"servers":[%q],"root":%q,"session_timeout":"10s"}`, addr, root)
		}},
		{bin: "kite-registry-etcd", name: "etcd", shared: true, cfg: func(t *testing.T) string {
			addr := testkit.Env(t, "KITE_ETCD_ADDR", "run `bash scripts/services.sh up && source .kite/services.env` (make test does)")
			// Leases are revoked on Close; a unique prefix keeps runs apart.
			return fmt.Sprintf(`{"endpoints":[%q],"ttl":"5s","dial_timeout":"2s","prefix":%q}`, addr, "/"+unique("kite-bridge-"))
		}},
		{bin: "kite-registry-nacos", name: "nacos", shared: true, cfg: func(t *testing.T) string {
			// The Open API double runs in this process; the plugin process
			// reaches it over loopback HTTP like a real Nacos.
			s := nacostest.NewServer(nacostest.Options{
				UnhealthyAfter: 600 * time.Millisecond, DeleteAfter: 1200 * time.Millisecond,
				ClientBeatInterval: 100 * time.Millisecond, CacheMillis: 50,
			})
			t.Cleanup(s.Close)
			return fmt.Sprintf(`{"servers":[%q],"beat_interval":"100ms"}`, s.URL)
		}},
	}
}

func TestRegistries(t *testing.T) {
	for _, c := range registryCases() {
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

// testRegistryModesMeet registers through the bridge and resolves and
// watches compiled in, and the other way round: the modes are
// interchangeable over one backend, as a stack that moves a registry out
// of process (or back) needs.
func testRegistryModesMeet(t *testing.T, e spi.Entry, name, cfg string) {
	bridged := build[spi.Registry](t, e, cfg)
	local := compiled[spi.Registry](t, spi.KindRegistry, name, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	service := unique("meet-")
	a := spi.Instance{Service: service, Addr: "127.0.0.1:7001", Weight: 30, Version: "v1", Metadata: map[string]string{"k": "v"}}
	b := spi.Instance{Service: service, Addr: "127.0.0.1:7002", Weight: 70}

	w, err := local.Watch(ctx, service)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := bridged.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := local.Register(ctx, b); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{a.Addr: 30, b.Addr: 70}
	for _, r := range []struct {
		who string
		reg spi.Registry
	}{{"bridged", bridged}, {"compiled-in", local}} {
		eventually(t, ctx, r.who+" resolves both instances", func() (bool, string) {
			ins, err := r.reg.Resolve(ctx, service)
			return err == nil && sameWeights(ins, want), fmt.Sprint(ins, err)
		})
	}
	// The compiled-in watch sees the bridged registration.
	for {
		ins, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("compiled-in watch: %v", err)
		}
		if sameWeights(ins, want) {
			break
		}
	}
	// Withdrawing through the bridge is seen compiled in.
	if err := bridged.Deregister(ctx, a); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "compiled-in resolve after the bridged deregister", func() (bool, string) {
		ins, err := local.Resolve(ctx, service)
		return err == nil && sameWeights(ins, map[string]int{b.Addr: 70}), fmt.Sprint(ins, err)
	})
	if err := local.Deregister(ctx, b); err != nil {
		t.Fatal(err)
	}
}

func sameWeights(ins []spi.Instance, want map[string]int) bool {
	if len(ins) != len(want) {
		return false
	}
	for _, in := range ins {
		if w, ok := want[in.Addr]; !ok || in.EffectiveWeight() != w {
			return false
		}
	}
	return true
}

// eventually polls cond (an external server's state) until it holds or
// ctx ends.
func eventually(t *testing.T, ctx context.Context, what string, cond func() (bool, string)) {
	t.Helper()
	for {
		ok, last := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s (last: %s)", what, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
