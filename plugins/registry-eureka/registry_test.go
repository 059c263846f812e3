package eureka

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/plugins/registry-eureka/eurekatest"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func double(t *testing.T, opts eurekatest.Options) *eurekatest.Server {
	t.Helper()
	s := eurekatest.NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

func newRegistry(t *testing.T, c Config) *Registry {
	t.Helper()
	if c.RenewalInterval == "" {
		c.RenewalInterval = "200ms"
	}
	if c.LeaseDuration == "" {
		c.LeaseDuration = "1s"
	}
	if c.PollInterval == "" {
		c.PollInterval = "50ms"
	}
	r, err := New(c)
	require.NoError(t, err)
	return r
}

func TestConformance(t *testing.T) {
	s := double(t, eurekatest.Options{})
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		return newRegistry(t, Config{Servers: []string{s.URL}})
	})
}

// TestRealEureka runs the conformance suite against a real Eureka server
// (KITE_EUREKA_ADDR, e.g. http://127.0.0.1:8761/eureka). A real server
// answers reads from a response cache refreshed every 30 s, hence the
// long wait.
func TestRealEureka(t *testing.T) {
	addr := testkit.OptIn(t, "KITE_EUREKA_ADDR", "a real Eureka server, which cannot be installed on the build machines (no Debian package; "+
		"it is a Java web app from Maven Central); set it to e.g. http://127.0.0.1:8761/eureka")
	old := spitest.RegistryWait
	spitest.RegistryWait = 90 * time.Second
	defer func() { spitest.RegistryWait = old }()
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		return newRegistry(t, Config{Servers: []string{addr}, RenewalInterval: "5s", LeaseDuration: "30s", PollInterval: "1s"})
	})
}

func TestStoredShape(t *testing.T) {
	s := double(t, eurekatest.Options{})
	r := newRegistry(t, Config{Servers: []string{s.URL}, RenewalInterval: "1500ms", LeaseDuration: "7s"})
	defer r.Close()
	in := spi.Instance{Service: "Shape-svc", Addr: "10.1.2.3:8080", Weight: 0, Version: "v3", Zone: "z1",
		Tags: []string{"b", "a"}, Metadata: map[string]string{"k": "v"}}
	require.NoError(t, r.Register(ctxT(t), in))
	got := s.Instances("SHAPE-SVC")
	require.Len(t, got, 1)
	h := got[0]
	assert.Equal(t, "10.1.2.3:8080", h.InstanceID)
	assert.Equal(t, "SHAPE-SVC", h.App)
	assert.Equal(t, "10.1.2.3", h.IPAddr)
	assert.Equal(t, 8080, h.Port)
	assert.Equal(t, "UP", h.Status)
	assert.Equal(t, 2, h.RenewalSecs, "1.5s rounds up to whole seconds")
	assert.Equal(t, 7, h.DurationSecs)
	assert.Equal(t, map[string]string{"k": "v", "kite.version": "v3", "kite.zone": "z1", "kite.tags": "b,a",
		"kite.weight": "0", "kite.service": "Shape-svc"}, h.Metadata)
	resolved, err := r.Resolve(ctxT(t), "Shape-svc")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, resolved)
	// Another service whose name folds to the same application stays apart.
	other, err := r.Resolve(ctxT(t), "SHAPE-SVC")
	require.NoError(t, err)
	assert.Empty(t, other)
}

// TestFullThenDelta: a watch does one full fetch, then deltas; a delta
// that does not reconcile (hash mismatch) triggers a full fetch.
func TestFullThenDelta(t *testing.T) {
	s := double(t, eurekatest.Options{DeltaRetention: 300 * time.Millisecond})
	r := newRegistry(t, Config{Servers: []string{s.URL}, PollInterval: "30ms"})
	defer r.Close()
	w, err := r.Watch(ctxT(t), "delta")
	require.NoError(t, err)
	defer w.Stop()
	first, err := w.Next(ctxT(t))
	require.NoError(t, err)
	assert.Empty(t, first)

	other := newRegistry(t, Config{Servers: []string{s.URL}})
	defer other.Close()
	a := spi.Instance{Service: "delta", Addr: "127.0.0.1:9001"}
	require.NoError(t, other.Register(ctxT(t), a))
	got, err := w.Next(ctxT(t))
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{a}, got)
	require.NoError(t, other.Deregister(ctxT(t), a))
	got, err = w.Next(ctxT(t))
	require.NoError(t, err)
	assert.Empty(t, got)
	r.cache.refreshMu.Lock()
	fulls, deltas := r.cache.fulls, r.cache.deltas
	r.cache.refreshMu.Unlock()
	assert.Equal(t, 1, fulls, "deltas reconcile: no second full fetch")
	assert.Positive(t, deltas)

	// A restarted server (empty, with an empty delta) does not reconcile
	// with a cache that still holds an instance: hash mismatch, full fetch.
	slow := newRegistry(t, Config{Servers: []string{s.URL}, RenewalInterval: "10s", LeaseDuration: "20s"}) // no renewal during the test
	defer slow.Close()
	b := spi.Instance{Service: "delta", Addr: "127.0.0.1:9002"}
	require.NoError(t, slow.Register(ctxT(t), b))
	got, err = w.Next(ctxT(t))
	require.NoError(t, err)
	require.Len(t, got, 1)
	time.Sleep(400 * time.Millisecond) // let the registration age out of the delta (retention 300ms)
	s.Restart()
	got, err = w.Next(ctxT(t))
	require.NoError(t, err)
	assert.Empty(t, got, "the empty delta alone would have kept b")
	r.cache.refreshMu.Lock()
	fulls = r.cache.fulls
	r.cache.refreshMu.Unlock()
	assert.Equal(t, 2, fulls, "hash mismatch after the restart forces a full fetch")
}

// TestLeaseRenewalAndEviction: heartbeats keep an instance past many
// lease durations; a crashed process's instance is evicted after about
// twice the lease duration (Eureka's rule) and leaves watches.
func TestLeaseRenewalAndEviction(t *testing.T) {
	s := double(t, eurekatest.Options{EvictionInterval: 50 * time.Millisecond})
	alive := newRegistry(t, Config{Servers: []string{s.URL}, RenewalInterval: "200ms", LeaseDuration: "1s"})
	defer alive.Close()
	crashed := newRegistry(t, Config{Servers: []string{s.URL}, RenewalInterval: "200ms", LeaseDuration: "1s"})
	defer crashed.Close()
	a := spi.Instance{Service: "lease", Addr: "127.0.0.1:9001"}
	b := spi.Instance{Service: "lease", Addr: "127.0.0.1:9002"}
	require.NoError(t, alive.Register(ctxT(t), a))
	require.NoError(t, crashed.Register(ctxT(t), b))
	watcher := newRegistry(t, Config{Servers: []string{s.URL}})
	defer watcher.Close()
	w, err := watcher.Watch(ctxT(t), "lease")
	require.NoError(t, err)
	defer w.Stop()
	first, err := w.Next(ctxT(t))
	require.NoError(t, err)
	require.Len(t, first, 2)

	crashed.cancel() // heartbeats stop; nothing is cancelled
	crashed.wg.Wait()
	start := time.Now()
	got, err := w.Next(ctxT(t))
	require.NoError(t, err)
	took := time.Since(start)
	assert.Equal(t, []spi.Instance{a}, got)
	assert.Greater(t, took, 1500*time.Millisecond, "evicted after ~2 x durationInSecs, not before")
	t.Logf("crashed instance evicted %v after its heartbeats stopped (lease 1s)", took.Round(time.Millisecond))
	assert.Positive(t, s.Count("PUT /eureka/apps/LEASE/127.0.0.1:9001"))
}

// TestRenewalReRegisters: a server that lost the instance answers the
// renewal 404, and the registry registers it again.
func TestRenewalReRegisters(t *testing.T) {
	s := double(t, eurekatest.Options{})
	r := newRegistry(t, Config{Servers: []string{s.URL}, RenewalInterval: "50ms"})
	defer r.Close()
	in := spi.Instance{Service: "again", Addr: "127.0.0.1:9003", Version: "v2"}
	require.NoError(t, r.Register(ctxT(t), in))
	s.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Instances("AGAIN")) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling the double's state
	}
	got, err := r.Resolve(ctxT(t), "again")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, got)
}

// TestStatusOverride: OUT_OF_SERVICE takes an instance out of every list
// while it keeps renewing; removing the override brings it back.
func TestStatusOverride(t *testing.T) {
	s := double(t, eurekatest.Options{})
	r := newRegistry(t, Config{Servers: []string{s.URL}})
	defer r.Close()
	in := spi.Instance{Service: "oos", Addr: "127.0.0.1:9004"}
	require.NoError(t, r.Register(ctxT(t), in))
	w, err := r.Watch(ctxT(t), "oos")
	require.NoError(t, err)
	defer w.Stop()
	first, err := w.Next(ctxT(t))
	require.NoError(t, err)
	require.Len(t, first, 1)
	require.NoError(t, r.SetStatus(ctxT(t), in, StatusOutOfService))
	got, err := w.Next(ctxT(t))
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.Equal(t, "OUT_OF_SERVICE", s.Instances("OOS")[0].Status)
	require.NoError(t, r.SetStatus(ctxT(t), in, StatusUp))
	got, err = w.Next(ctxT(t))
	require.NoError(t, err)
	assert.Len(t, got, 1)
	require.NoError(t, r.SetStatus(ctxT(t), in, StatusDown))
	got, err = w.Next(ctxT(t))
	require.NoError(t, err)
	assert.Empty(t, got)
	require.NoError(t, r.SetStatus(ctxT(t), in, ""))
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(r.SetStatus(ctxT(t), in, "SLEEPY")))
	assert.Equal(t, spi.NotFound, spi.CodeOf(r.SetStatus(ctxT(t), spi.Instance{Service: "oos", Addr: "127.0.0.1:1"}, StatusUp)))
}

func TestValidation(t *testing.T) {
	s := double(t, eurekatest.Options{})
	r := newRegistry(t, Config{Servers: []string{s.URL}})
	defer r.Close()
	base := spi.Instance{Service: "v", Addr: "127.0.0.1:9000"}
	for name, mut := range map[string]func(*spi.Instance){
		"meta key xml":      func(in *spi.Instance) { in.Metadata = map[string]string{"1abc": "v"} },
		"meta key at":       func(in *spi.Instance) { in.Metadata = map[string]string{"@class": "v"} },
		"meta key reserved": func(in *spi.Instance) { in.Metadata = map[string]string{MetaService: "x"} },
		"tag comma":         func(in *spi.Instance) { in.Tags = []string{"a,b"} },
		"unix addr":         func(in *spi.Instance) { in.Addr = "unix:///tmp/x.sock" },
		"no port":           func(in *spi.Instance) { in.Addr = "127.0.0.1" },
		"slash name":        func(in *spi.Instance) { in.Service = "a/b" },
		"empty name":        func(in *spi.Instance) { in.Service = "" },
	} {
		in := base
		mut(&in)
		err := r.Register(ctxT(t), in)
		assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err), "%s: %v", name, err)
	}
	assert.Zero(t, s.Count("POST "))
	for _, c := range []Config{
		{}, {Servers: []string{"ftp://x"}}, {Servers: []string{"h:1"}, LeaseDuration: "1500ms"},
		{Servers: []string{"h:1"}, RenewalInterval: "5s", LeaseDuration: "5s"}, {Servers: []string{"h:1"}, Timeout: "0s"},
	} {
		_, err := New(c)
		assert.Error(t, err, "%+v", c)
	}
}

// TestBadServer: a server answering 500s or garbage gives clear errors and
// no crash; watches keep their snapshot.
func TestBadServer(t *testing.T) {
	s := double(t, eurekatest.Options{})
	r := newRegistry(t, Config{Servers: []string{s.URL}, Timeout: "1s"})
	defer r.Close()
	in := spi.Instance{Service: "bad", Addr: "127.0.0.1:9000"}
	require.NoError(t, r.Register(ctxT(t), in))
	w, err := r.Watch(ctxT(t), "bad")
	require.NoError(t, err)
	defer w.Stop()
	first, err := w.Next(ctxT(t))
	require.NoError(t, err)
	require.Len(t, first, 1)
	s.SetFault(http.StatusInternalServerError, "java.lang.NullPointerException")
	fresh := newRegistry(t, Config{Servers: []string{s.URL}, Timeout: "1s"})
	defer fresh.Close()
	_, err = fresh.Resolve(ctxT(t), "bad")
	assert.Equal(t, spi.Unavailable, spi.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), "HTTP 500: java.lang.NullPointerException")
	assert.Equal(t, spi.Unavailable, spi.CodeOf(fresh.Register(ctxT(t), spi.Instance{Service: "bad", Addr: "127.0.0.1:9001"})))
	got, err := r.Resolve(ctxT(t), "bad")
	require.NoError(t, err, "last known list")
	assert.Equal(t, first, got)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = w.Next(ctx)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the watch keeps its snapshot")
	s.SetFault(0, "")

	for name, body := range map[string]string{
		"garbage":     "\x00\xff{{",
		"html":        "<html>It works!</html>",
		"other json":  `{"apps": 3}`,
		"bad port":    `{"application":{"name":"BAD","instance":[{"instanceId":"x","app":"BAD","ipAddr":"1.2.3.4","status":"UP","port":{"$":"eighty"}}]},"applications":{"application":{"name":"BAD","instance":{"instanceId":"x","app":"BAD","ipAddr":"1.2.3.4","status":"UP","port":{"$":-1}}}}}`,
		"wrong types": `{"application":{"name":7,"instance":"nope"},"applications":{"application":[1,2]}}`,
	} {
		t.Run(name, func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(body))
			}))
			defer hs.Close()
			r := newRegistry(t, Config{Servers: []string{hs.URL}, Timeout: "1s"})
			defer r.Close()
			_, err := r.Resolve(ctxT(t), "bad")
			require.Error(t, err)
			assert.Equal(t, spi.Unavailable, spi.CodeOf(err))
			assert.Contains(t, err.Error(), `eureka registry: resolving "bad"`)
			t.Log(err)
			_, err = r.Watch(ctxT(t), "bad")
			require.Error(t, err)
			t.Log(err)
		})
	}
}

// TestLegacyJSON: servers using the old XStream JSON write single
// instances and applications as objects and numbers as strings.
func TestLegacyJSON(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inst := `{"instanceId":"1.2.3.4:80","hostName":"h","app":"OLD","ipAddr":"1.2.3.4","status":"UP","port":{"@enabled":"true","$":"80"},"metadata":{"@class":"java.util.Collections$EmptyMap"}}`
		switch r.URL.Path {
		case "/eureka/apps/OLD":
			_, _ = w.Write([]byte(`{"application":{"name":"OLD","instance":` + inst + `}}`))
		default:
			_, _ = w.Write([]byte(`{"applications":{"versions__delta":"1","apps__hashcode":"UP_1_","application":{"name":"OLD","instance":` + inst + `}}}`))
		}
	}))
	defer hs.Close()
	r := newRegistry(t, Config{Servers: []string{hs.URL}})
	defer r.Close()
	want := []spi.Instance{{Service: "old", Addr: "1.2.3.4:80"}}
	got, err := r.Resolve(ctxT(t), "old")
	require.NoError(t, err)
	assert.Equal(t, want, got)
	w, err := r.Watch(ctxT(t), "old")
	require.NoError(t, err)
	defer w.Stop()
	got, err = w.Next(ctxT(t))
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestFailover(t *testing.T) {
	s := double(t, eurekatest.Options{})
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer dead.Close()
	r := newRegistry(t, Config{Servers: []string{dead.URL + "/eureka", s.URL}})
	defer r.Close()
	in := spi.Instance{Service: "fo", Addr: "127.0.0.1:9005"}
	require.NoError(t, r.Register(ctxT(t), in))
	got, err := r.Resolve(ctxT(t), "fo")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, got)
}
