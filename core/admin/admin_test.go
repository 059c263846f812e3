package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/admin"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/spi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSource is a Source whose answers the test sets.
type fakeSource struct {
	mu     sync.Mutex
	health []admin.ServerHealth
	snap   admin.Snapshot
}

func (f *fakeSource) Health() []admin.ServerHealth {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

func (f *fakeSource) Snapshot(context.Context) admin.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func start(t *testing.T, o admin.Options) *admin.Server {
	t.Helper()
	o.Listen = "127.0.0.1:0"
	s, err := admin.New(o)
	require.NoError(t, err)
	require.NoError(t, s.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, s.Close(ctx))
	})
	return s
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

func TestHealthzFollowsServers(t *testing.T) {
	src := &fakeSource{}
	s := start(t, admin.Options{Source: src})
	base := "http://" + s.Addr()

	code, body, hdr := get(t, base+"/healthz")
	assert.Equal(t, 200, code, "no server: the process itself is up")
	assert.Equal(t, "application/json", hdr.Get("Content-Type"))
	assert.JSONEq(t, `{"status":"SERVING","servers":[]}`, body)

	src.mu.Lock()
	src.health = []admin.ServerHealth{{Name: "echo", State: admin.StateServing, Status: "SERVING", Services: map[string]string{"Echo": "SERVING"}}}
	src.mu.Unlock()
	code, body, _ = get(t, base+"/healthz")
	assert.Equal(t, 200, code)
	var hb admin.HealthBody
	require.NoError(t, json.Unmarshal([]byte(body), &hb))
	assert.Equal(t, "SERVING", hb.Status)
	assert.Equal(t, "SERVING", hb.Servers[0].Services["Echo"])

	for _, state := range []string{admin.StateStarting, admin.StateDraining, admin.StateStopped} {
		src.mu.Lock()
		src.health[0].State, src.health[0].Status = state, "NOT_SERVING"
		src.mu.Unlock()
		code, body, _ = get(t, base+"/healthz")
		assert.Equal(t, 503, code, state)
		assert.Contains(t, body, `"status": "NOT_SERVING"`)
	}
}

func TestStatusPageEscapesAndLists(t *testing.T) {
	src := &fakeSource{snap: admin.Snapshot{
		Config: "/etc/kite.hcl", Started: time.Now().Add(-time.Minute),
		Servers: []admin.ServerInfo{{Name: "users", Service: "users", Listen: "127.0.0.1:0", Addr: "127.0.0.1:4000",
			Registry: "main", State: admin.StateServing, Status: "SERVING", Conns: 3, InFlight: -1,
			Services: []admin.ServiceInfo{{Name: "Users", Status: "SERVING", Methods: []string{"Get", "Put"}}}}},
		Clients: []admin.ClientInfo{{Name: "users", Service: "users", Balancer: "weighted", Registry: "main",
			Instances: []spi.Instance{{Service: "users", Addr: "127.0.0.1:4000", Version: "v2"}},
			Stats: core.ClientStats{Calls: 10, Retries: 2, Ejections: 1,
				Breakers: map[string]resilience.BreakerStats{"127.0.0.1:4000": {State: resilience.HalfOpen}}}}},
		Plugins: []admin.PluginInfo{{Kind: "registry", Name: "zk", Version: "1.0", Source: "/opt/<script>plugin", SHA256: "ab12cd34ef56ab12cd34"}},
		Registries: []admin.RegistryInfo{{Label: "main", Impl: "local", Services: []admin.RegistryService{
			{Service: "users", Instances: []spi.Instance{{Addr: "127.0.0.1:4000"}}}, {Service: "orders", Error: "timeout"}}}},
	}}
	s := start(t, admin.Options{Source: src})
	code, page, hdr := get(t, "http://"+s.Addr()+"/")
	require.Equal(t, 200, code)
	assert.Equal(t, "text/html; charset=utf-8", hdr.Get("Content-Type"))
	for _, want := range []string{"Users", ">Get<", ">Put<", "127.0.0.1:4000", "weighted", "half-open",
		"version=v2", "zk", "ab12cd34ef56…", "orders", "timeout", "n/a", "/etc/kite.hcl"} {
		assert.Contains(t, page, want)
	}
	assert.NotContains(t, page, "<script>", "html/template escapes what the page shows")
	assert.Contains(t, page, "&lt;script&gt;")
	assert.NotContains(t, page, "/debug/pprof/", "no pprof link when pprof is off")

	code, _, _ = get(t, "http://"+s.Addr()+"/nope")
	assert.Equal(t, 404, code)
}

func TestMetricsAndPprof(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "kite_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(7)
	s := start(t, admin.Options{Source: &fakeSource{}, Gatherer: reg, Pprof: true})
	code, body, _ := get(t, "http://"+s.Addr()+"/metrics")
	require.Equal(t, 200, code)
	assert.Contains(t, body, "kite_test_total 7")

	code, body, _ = get(t, "http://"+s.Addr()+"/debug/pprof/")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, "goroutine")
	code, _, _ = get(t, "http://"+s.Addr()+"/debug/pprof/goroutine?debug=1")
	assert.Equal(t, 200, code)

	off := start(t, admin.Options{Source: &fakeSource{}})
	code, _, _ = get(t, "http://"+off.Addr()+"/debug/pprof/")
	assert.Equal(t, 404, code)
}

func TestNewNeedsASource(t *testing.T) {
	_, err := admin.New(admin.Options{})
	assert.Error(t, err)
}
