package faults

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	local "github.com/kiterpc/kite/plugins/registry-local"
	"github.com/kiterpc/kite/plugins/registry-nacos/nacostest"
	"github.com/kiterpc/kite/spi"

	_ "github.com/kiterpc/kite/plugins/registry-nacos"
)

const (
	service = "echo"
	// outage is how long each registry stays away.
	outage = 1500 * time.Millisecond
	// discoveryBound: once the registry is back, an instance registered
	// then reaches the client within this (a watch poll or two, or a
	// watch re-established after its backoff).
	discoveryBound = 3 * time.Second
)

// registryCase is a registry under test: how to build one, and how to
// take it away and bring it back.
type registryCase struct {
	name    string
	build   func(t *testing.T) spi.Registry
	down    func(t *testing.T)
	restore func(t *testing.T)
}

func buildRegistry(t *testing.T, name string, cfg any) spi.Registry {
	t.Helper()
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	r, err := spi.Default.BuildRegistry(name, spi.Config(raw))
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func localCase(t *testing.T) registryCase {
	dir := filepath.Join(t.TempDir(), "registry")
	aside := dir + ".away"
	return registryCase{
		name: "local",
		build: func(t *testing.T) spi.Registry {
			return buildRegistry(t, local.Name, map[string]string{"dir": dir, "poll_interval": "20ms"})
		},
		// Replace the directory by a plain file: every read fails with
		// ENOTDIR. (Permission bits would not do: the tests may run as
		// root, who reads anything.)
		down: func(t *testing.T) {
			require.NoError(t, os.Rename(dir, aside))
			require.NoError(t, os.WriteFile(dir, []byte("not a registry\n"), 0o600))
		},
		restore: func(t *testing.T) {
			require.NoError(t, os.Remove(dir))
			require.NoError(t, os.Rename(aside, dir))
		},
	}
}

func nacosCase(t *testing.T) registryCase {
	ns := nacostest.NewServer(nacostest.Options{ClientBeatInterval: 200 * time.Millisecond, CacheMillis: 50})
	t.Cleanup(ns.Close)
	return registryCase{
		name: "nacos",
		build: func(t *testing.T) spi.Registry {
			return buildRegistry(t, "nacos", map[string]any{
				"servers": []string{ns.URL}, "poll_interval": "50ms",
				"beat_interval": "200ms", "timeout": "300ms",
			})
		},
		// The double drops every connection without an answer, as a
		// crashed or partitioned Nacos.
		down:    func(*testing.T) { ns.SetDown(true) },
		restore: func(*testing.T) { ns.SetDown(false) },
	}
}

// TestRegistryOutage takes the registry away while calls flow: the client
// keeps its last known instances and every call keeps succeeding on them;
// once the registry is back, changes reach the client again.
func TestRegistryOutage(t *testing.T) {
	for _, mk := range []func(*testing.T) registryCase{localCase, nacosCase} {
		rc := mk(t)
		t.Run(rc.name, func(t *testing.T) { runRegistryOutage(t, rc) })
	}
}

// registerServer starts an in-process server and registers it through
// its own registry (as a server process would).
func registerServer(t *testing.T, rc registryCase, name string) string {
	t.Helper()
	_, addr := startServer(t, name, core.ServerOptions{}, nil)
	reg := rc.build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, reg.Register(ctx, spi.Instance{Service: service, Addr: addr}))
	return addr
}

func hasInstances(c *core.Client, n int) func() bool {
	return func() bool { return len(c.Instances()) == n }
}

func runRegistryOutage(t *testing.T, rc registryCase) {
	registerServer(t, rc, "s1")
	registerServer(t, rc, "s2")
	c := newClient(t, core.ClientOptions{Service: service, Registry: rc.build(t)})
	waitFor(t, 5*time.Second, "two instances discovered", hasInstances(c, 2))

	l := startLoad(t, 4, time.Second, func(ctx context.Context, seq int) error {
		_, err := echoCall(ctx, c, seq)
		return err
	})
	waitFor(t, 2*time.Second, "load running", func() bool { return l.snapshot().Codes[spi.OK] >= 50 })

	probe := rc.build(t) // a registry that has seen nothing yet
	rc.down(t)
	before := l.snapshot()
	pctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err := probe.Resolve(pctx, service)
	cancel()
	require.Error(t, err, "the registry is really unreachable")
	t.Logf("%s down: %v", rc.name, err)
	time.Sleep(outage) // the outage's duration
	during := l.snapshot()
	assert.Len(t, c.Instances(), 2, "the last known instances are kept")
	assert.Greater(t, during.Codes[spi.OK]-before.Codes[spi.OK], 100, "calls keep flowing during the outage")
	rc.restore(t)

	// Back: a new instance is discovered again.
	registerServer(t, rc, "s3")
	took := waitFor(t, discoveryBound, "the new instance discovered after the outage", hasInstances(c, 3))
	t.Logf("%s: a new instance reached the client %s after the registry came back", rc.name, took.Round(time.Millisecond))
	seen := map[string]bool{}
	waitFor(t, 2*time.Second, "calls reach all three servers", func() bool {
		r, err := echoCall(context.Background(), c, 0)
		if err == nil {
			seen[r.Server] = true
		}
		return len(seen) == 3
	})

	r := l.finish(t)
	assert.Zero(t, r.Lost, "lost calls")
	assert.Empty(t, r.errorsOtherThan(), "no call failed")
}
