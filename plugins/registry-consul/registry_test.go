package consul

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/plugins/registry-consul/consultest"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func double(t *testing.T, opts consultest.Options) *consultest.Server {
	t.Helper()
	s := consultest.NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

func newRegistry(t *testing.T, c Config) *Registry {
	t.Helper()
	if c.CheckTTL == "" {
		c.CheckTTL = "600ms"
	}
	if c.Wait == "" {
		c.Wait = "2s"
	}
	r, err := New(c)
	require.NoError(t, err)
	return r
}

func TestConformance(t *testing.T) {
	s := double(t, consultest.Options{})
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		return newRegistry(t, Config{Address: s.Addr()})
	})
}

func TestConformanceWithACL(t *testing.T) {
	s := double(t, consultest.Options{Token: "s3cret-token"})
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		return newRegistry(t, Config{Address: s.URL, Token: "s3cret-token", Datacenter: consultest.Datacenter})
	})
}

// TestRealConsul runs the conformance suite against a real Consul agent
// (KITE_CONSUL_ADDR, e.g. `consul agent -dev`). CI has none: building an
// agent costs far more than CI's budget (docs/REGISTRIES.md), so this is
// opt-in; the same suite runs against consultest in TestConformance.
func TestRealConsul(t *testing.T) {
	addr := testkit.OptIn(t, "KITE_CONSUL_ADDR", "a real Consul agent, which CI does not build: see docs/REGISTRIES.md")
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		return newRegistry(t, Config{Address: addr, Token: os.Getenv("KITE_CONSUL_TOKEN"), CheckTTL: "2s"})
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling the double's state
	}
}

func TestStoredShape(t *testing.T) {
	s := double(t, consultest.Options{})
	r := newRegistry(t, Config{Address: s.Addr(), CheckTTL: "3s", DeregisterAfter: "90s"})
	defer r.Close()
	in := spi.Instance{Service: "shape", Addr: "10.1.2.3:8080", Weight: 250, Version: "v3", Zone: "z1",
		Tags: []string{"b", "a"}, Metadata: map[string]string{"k": "v"}}
	require.NoError(t, r.Register(ctxT(t), in))
	got := s.Services("shape")
	require.Len(t, got, 1)
	sv := got[0]
	assert.Equal(t, "kite-shape-10.1.2.3:8080", sv.ID)
	assert.Equal(t, "10.1.2.3", sv.Address)
	assert.Equal(t, 8080, sv.Port)
	assert.Equal(t, []string{"b", "a"}, sv.Tags)
	assert.Equal(t, 250, sv.Passing)
	assert.Equal(t, map[string]string{"k": "v", "kite-version": "v3", "kite-zone": "z1", "kite-weight": "250"}, sv.Meta)
	c, ok := s.CheckOf("service:kite-shape-10.1.2.3:8080")
	require.True(t, ok)
	assert.Equal(t, "passing", c.Status)
	assert.Equal(t, 3*time.Second, c.TTL)
	assert.Equal(t, 90*time.Second, c.DeregisterAfter)

	resolved, err := r.Resolve(ctxT(t), "shape")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, resolved)
}

func TestWeightMapping(t *testing.T) {
	s := double(t, consultest.Options{})
	r := newRegistry(t, Config{Address: s.Addr()})
	defer r.Close()
	for _, tc := range []struct{ weight, passing int }{{0, 100}, {1, 1}, {100000, 65535}} {
		in := spi.Instance{Service: "weights", Addr: "127.0.0.1:9001", Weight: tc.weight}
		require.NoError(t, r.Register(ctxT(t), in))
		assert.Equal(t, tc.passing, s.Services("weights")[0].Passing, "weight %d", tc.weight)
		got, err := r.Resolve(ctxT(t), "weights")
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, tc.weight, got[0].Weight, "Kite's exact weight round-trips")
	}
	// An operator changes Weights.Passing (here: another registration of
	// the same id with other weights): Consul's weight wins.
	reg, err := r.toRegistration(spi.Instance{Service: "weights", Addr: "127.0.0.1:9001", Weight: 100000})
	require.NoError(t, err)
	reg.Weights.Passing = 7
	require.NoError(t, r.client.Agent().ServiceRegister(reg))
	got, err := r.Resolve(ctxT(t), "weights")
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, 7, got[0].Weight)
}

// TestIPv6: an IPv6 instance registers, renews and deregisters (its id
// travels in URL paths without brackets) and resolves to its address.
func TestIPv6(t *testing.T) {
	s := double(t, consultest.Options{})
	r := newRegistry(t, Config{Address: s.Addr(), CheckTTL: "300ms"})
	in := spi.Instance{Service: "six", Addr: "[::1]:9000"}
	require.NoError(t, r.Register(ctxT(t), in))
	assert.Equal(t, "kite-six-::1:9000", s.Services("six")[0].ID)
	waitFor(t, "a renewal", func() bool { return s.Count("PUT /v1/agent/check/update/") > 0 })
	got, err := r.Resolve(ctxT(t), "six")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, got)
	require.NoError(t, r.Close())
	assert.Empty(t, s.Services("six"))
}

// TestHeartbeatKeepsCheckPassing: renewals every third of the TTL keep the
// instance visible past many TTLs.
func TestHeartbeatKeepsCheckPassing(t *testing.T) {
	s := double(t, consultest.Options{})
	r := newRegistry(t, Config{Address: s.Addr(), CheckTTL: "900ms"})
	defer r.Close()
	in := spi.Instance{Service: "alive", Addr: "127.0.0.1:9001"}
	require.NoError(t, r.Register(ctxT(t), in))
	w, err := r.Watch(ctxT(t), "alive")
	require.NoError(t, err)
	defer w.Stop()
	first, err := w.Next(ctxT(t))
	require.NoError(t, err)
	require.Len(t, first, 1)
	// 2 s = 2.2 TTLs: no snapshot may come (the check never lapses).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	got, err := w.Next(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "unexpected snapshot %v", got)
	c, _ := s.CheckOf("service:kite-alive-127.0.0.1:9001")
	assert.Equal(t, "passing", c.Status)
	n := s.Count("PUT /v1/agent/check/update/")
	assert.GreaterOrEqual(t, n, int64(5), "renewals in ~2 s at 300 ms")
	t.Logf("%d TTL renewals in ~2 s", n)
}

// TestCrashedInstanceLeaves: a process that stops renewing (crash) is
// dropped from watches once its TTL lapses, and removed by the agent
// after deregister_after.
func TestCrashedInstanceLeaves(t *testing.T) {
	s := double(t, consultest.Options{})
	crashed := newRegistry(t, Config{Address: s.Addr(), CheckTTL: "300ms", DeregisterAfter: "400ms"})
	defer crashed.Close()
	observer := newRegistry(t, Config{Address: s.Addr()})
	defer observer.Close()
	in := spi.Instance{Service: "crash", Addr: "127.0.0.1:9002"}
	require.NoError(t, crashed.Register(ctxT(t), in))
	w, err := observer.Watch(ctxT(t), "crash")
	require.NoError(t, err)
	defer w.Stop()
	first, err := w.Next(ctxT(t))
	require.NoError(t, err)
	require.Len(t, first, 1)

	crashed.cancel() // the heartbeat stops, nothing is deregistered
	<-crashed.beat
	start := time.Now()
	next, err := w.Next(ctxT(t))
	require.NoError(t, err)
	assert.Empty(t, next)
	took := time.Since(start)
	assert.Greater(t, took, 150*time.Millisecond, "not before the TTL lapses")
	t.Logf("crashed instance left the watch %v after its last renewal window", took.Round(time.Millisecond))
	waitFor(t, "the agent to deregister the critical service", func() bool { return len(s.Services("crash")) == 0 })
}

// TestAgentRestartReRegisters: an agent that forgot its services (a -dev
// agent restarted) gets them back from the heartbeat.
func TestAgentRestartReRegisters(t *testing.T) {
	s := double(t, consultest.Options{})
	r := newRegistry(t, Config{Address: s.Addr(), CheckTTL: "150ms"})
	defer r.Close()
	in := spi.Instance{Service: "restart", Addr: "127.0.0.1:9003", Version: "v9"}
	require.NoError(t, r.Register(ctxT(t), in))
	s.Restart()
	require.Empty(t, s.Services("restart"))
	waitFor(t, "re-registration", func() bool { return len(s.Services("restart")) == 1 })
	got, err := r.Resolve(ctxT(t), "restart")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, got)
}

// TestWatchUsesBlockingQueries: an idle watch waits on the server (one
// request per wait, not a poll loop), and a change is delivered at once.
func TestWatchUsesBlockingQueries(t *testing.T) {
	s := double(t, consultest.Options{})
	r := newRegistry(t, Config{Address: s.Addr(), Wait: "400ms"})
	defer r.Close()
	w, err := r.Watch(ctxT(t), "blocking")
	require.NoError(t, err)
	defer w.Stop()
	first, err := w.Next(ctxT(t))
	require.NoError(t, err)
	require.Empty(t, first)
	before := s.Count("GET /v1/health/service/blocking")
	time.Sleep(time.Second) // idle on purpose: count the requests an idle watch makes
	idle := s.Count("GET /v1/health/service/blocking") - before
	assert.LessOrEqual(t, idle, int64(4), "1 s idle with wait=400ms is 2-3 blocking queries")
	assert.GreaterOrEqual(t, idle, int64(2), "the wait expires and the query is sent again")

	// A watch whose query waits 10 s gets a change at once: the blocked
	// query wakes, no re-poll is involved.
	long := newRegistry(t, Config{Address: s.Addr(), Wait: "10s"})
	defer long.Close()
	lw, err := long.Watch(ctxT(t), "blocking")
	require.NoError(t, err)
	defer lw.Stop()
	_, err = lw.Next(ctxT(t))
	require.NoError(t, err)
	in := spi.Instance{Service: "blocking", Addr: "127.0.0.1:9004"}
	start := time.Now()
	require.NoError(t, r.Register(ctxT(t), in))
	got, err := lw.Next(ctxT(t))
	require.NoError(t, err)
	require.Len(t, got, 1)
	lat := time.Since(start)
	assert.Less(t, lat, 5*time.Second, "well within the 10 s wait")
	t.Logf("idle watch: %d queries in 1 s (wait 400ms); change delivered %v after Register to a watch waiting 10 s", idle, lat.Round(time.Microsecond))
}

// TestOutage: while the agent is away, Resolve answers the last list and
// the watch stays quiet; afterwards changes flow again.
func TestOutage(t *testing.T) {
	s := double(t, consultest.Options{})
	r := newRegistry(t, Config{Address: s.Addr(), Timeout: "500ms"})
	defer r.Close()
	other := newRegistry(t, Config{Address: s.Addr(), Timeout: "500ms"})
	defer other.Close()
	a := spi.Instance{Service: "outage", Addr: "127.0.0.1:9005"}
	require.NoError(t, other.Register(ctxT(t), a))
	w, err := r.Watch(ctxT(t), "outage")
	require.NoError(t, err)
	defer w.Stop()
	first, err := w.Next(ctxT(t))
	require.NoError(t, err)
	require.Len(t, first, 1)

	s.SetDown(true)
	got, err := r.Resolve(ctxT(t), "outage")
	require.NoError(t, err, "the last known list")
	assert.Equal(t, first, got)
	fresh := newRegistry(t, Config{Address: s.Addr(), Timeout: "500ms"})
	defer fresh.Close()
	_, err = fresh.Resolve(ctxT(t), "outage")
	assert.Equal(t, spi.Unavailable, spi.CodeOf(err), "%v", err)
	err = fresh.Register(ctxT(t), spi.Instance{Service: "outage", Addr: "127.0.0.1:9006"})
	assert.Equal(t, spi.Unavailable, spi.CodeOf(err), "%v", err)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = w.Next(ctx)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded, "quiet while down")

	s.SetDown(false)
	b := spi.Instance{Service: "outage", Addr: "127.0.0.1:9007"}
	require.NoError(t, other.Register(ctxT(t), b))
	for {
		got, err := w.Next(ctxT(t))
		require.NoError(t, err)
		if len(got) == 2 {
			break
		}
	}
}

func TestValidation(t *testing.T) {
	s := double(t, consultest.Options{})
	r := newRegistry(t, Config{Address: s.Addr()})
	defer r.Close()
	base := spi.Instance{Service: "v", Addr: "127.0.0.1:9000"}
	many := map[string]string{}
	for i := range 62 {
		many["k"+strings.Repeat("x", i)] = "v"
	}
	for name, tc := range map[string]struct {
		mut  func(*spi.Instance)
		want string
	}{
		"meta key chars":    {func(in *spi.Instance) { in.Metadata = map[string]string{"a.b": "v"} }, "only letters, digits"},
		"meta key reserved": {func(in *spi.Instance) { in.Metadata = map[string]string{"consul-x": "v"} }, `"consul-" is reserved`},
		"meta key kite":     {func(in *spi.Instance) { in.Metadata = map[string]string{MetaWeight: "1"} }, "reserved for the field"},
		"meta key long":     {func(in *spi.Instance) { in.Metadata = map[string]string{strings.Repeat("k", 129): "v"} }, "longer than Consul's 128"},
		"meta value long":   {func(in *spi.Instance) { in.Metadata = map[string]string{"k": strings.Repeat("v", 513)} }, "above Consul's 512"},
		"meta pairs":        {func(in *spi.Instance) { in.Metadata = many; in.Version = "v"; in.Zone = "z" }, "Consul allows 64"},
		"unix addr":         {func(in *spi.Instance) { in.Addr = "unix:///tmp/x.sock" }, "not host:port"},
		"any addr":          {func(in *spi.Instance) { in.Addr = "0.0.0.0:80" }, "unspecified"},
		"bad port":          {func(in *spi.Instance) { in.Addr = "127.0.0.1:0" }, "no valid port"},
		"slash name":        {func(in *spi.Instance) { in.Service = "a/b" }, "URL paths"},
		"empty name":        {func(in *spi.Instance) { in.Service = "" }, "empty service"},
	} {
		t.Run(name, func(t *testing.T) {
			in := base
			tc.mut(&in)
			err := r.Register(ctxT(t), in)
			require.Error(t, err)
			assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err))
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	assert.Empty(t, s.Services(""), "nothing reached the agent")
	assert.Zero(t, s.Count("PUT /v1/agent/service/register"))

	for _, c := range []Config{
		{Address: "ftp://h:1"}, {Address: "nohost"}, {CheckTTL: "1ms"}, {CheckTTL: "x"},
		{Wait: "11m"}, {Timeout: "-1s"}, {DeregisterAfter: "0s"},
	} {
		_, err := New(c)
		assert.Error(t, err, "%+v", c)
	}
}

func TestACL(t *testing.T) {
	s := double(t, consultest.Options{Token: "right"})
	in := spi.Instance{Service: "acl", Addr: "127.0.0.1:9000"}
	wrong := newRegistry(t, Config{Address: s.Addr(), Token: "wrong"})
	defer wrong.Close()
	err := wrong.Register(ctxT(t), in)
	assert.Equal(t, spi.Unauthenticated, spi.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), "ACL not found")
	none := newRegistry(t, Config{Address: s.Addr()})
	defer none.Close()
	_, err = none.Resolve(ctxT(t), "acl")
	assert.Equal(t, spi.PermissionDenied, spi.CodeOf(err), "%v", err)
	_, err = none.Watch(ctxT(t), "acl")
	assert.Equal(t, spi.PermissionDenied, spi.CodeOf(err), "%v", err)
}

// TestBadServer: a server answering garbage or errors gives clear errors,
// never a panic, and the watch keeps its snapshot.
func TestBadServer(t *testing.T) {
	s := double(t, consultest.Options{})
	r := newRegistry(t, Config{Address: s.Addr(), Timeout: "1s"})
	defer r.Close()
	in := spi.Instance{Service: "bad", Addr: "127.0.0.1:9000"}
	require.NoError(t, r.Register(ctxT(t), in))
	w, err := r.Watch(ctxT(t), "bad")
	require.NoError(t, err)
	defer w.Stop()
	first, err := w.Next(ctxT(t))
	require.NoError(t, err)
	require.Len(t, first, 1)

	s.SetFault(http.StatusInternalServerError, "rpc error making call: No cluster leader")
	fresh := newRegistry(t, Config{Address: s.Addr(), Timeout: "1s"})
	defer fresh.Close()
	_, err = fresh.Resolve(ctxT(t), "bad")
	require.Error(t, err)
	assert.Equal(t, spi.Unavailable, spi.CodeOf(err))
	assert.Contains(t, err.Error(), "HTTP 500: rpc error making call: No cluster leader")
	err = fresh.Register(ctxT(t), spi.Instance{Service: "bad", Addr: "127.0.0.1:9001"})
	assert.Equal(t, spi.Unavailable, spi.CodeOf(err), "%v", err)
	got, err := r.Resolve(ctxT(t), "bad")
	require.NoError(t, err, "the last known list")
	assert.Equal(t, first, got)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = w.Next(ctx)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the watch keeps its snapshot")
	s.SetFault(0, "")

	// Something that is not Consul at all: 200 with garbage, with HTML,
	// with JSON of another shape, and without Consul's headers.
	for name, h := range map[string]http.HandlerFunc{
		"garbage": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Consul-Index", "5")
			w.Header().Set("X-Consul-LastContact", "0")
			_, _ = w.Write([]byte("\x00\xff{{not json"))
		},
		"html": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("<html><body>It works!</body></html>"))
		},
		"other json": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Consul-Index", "5")
			w.Header().Set("X-Consul-LastContact", "0")
			_, _ = w.Write([]byte(`{"services": 3}`))
		},
		"truncated": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Consul-Index", "5")
			w.Header().Set("X-Consul-LastContact", "0")
			_, _ = w.Write([]byte(`[{"Service":{"ID":"x","Port":`))
		},
	} {
		t.Run(name, func(t *testing.T) {
			hs := httptest.NewServer(h)
			defer hs.Close()
			r := newRegistry(t, Config{Address: hs.URL, Timeout: "1s"})
			defer r.Close()
			_, err := r.Resolve(ctxT(t), "bad")
			require.Error(t, err)
			assert.Equal(t, spi.Unavailable, spi.CodeOf(err), "%v", err)
			assert.Contains(t, err.Error(), `consul registry: resolving "bad"`)
			t.Log(err)
			_, err = r.Watch(ctxT(t), "bad")
			require.Error(t, err)
		})
	}

	// A server that answers well-formed lists at once, with an index that
	// never moves (the api client ignores a header it cannot parse): the
	// watch must back off instead of spinning.
	var hits atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("X-Consul-Index", "minus one")
		w.Header().Set("X-Consul-LastContact", "0")
		_, _ = w.Write([]byte(`[]`))
	}))
	defer hs.Close()
	r2 := newRegistry(t, Config{Address: hs.URL, Timeout: "1s"})
	defer r2.Close()
	w2, err := r2.Watch(ctxT(t), "bad")
	require.NoError(t, err)
	time.Sleep(time.Second) // counting the requests of a watch left alone
	w2.Stop()
	assert.Less(t, hits.Load(), int64(12), "a non-blocking server is queried with backoff (50ms doubling), not in a loop")
	t.Logf("non-blocking server: %d queries in 1 s", hits.Load())
}
