package nacos

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/plugins/registry-nacos/nacostest"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fastServer is a double whose beat expiry and cache hints are short
// enough for tests.
func fastServer(t *testing.T, opts nacostest.Options) *nacostest.Server {
	t.Helper()
	if opts.UnhealthyAfter == 0 {
		opts.UnhealthyAfter = 600 * time.Millisecond
	}
	if opts.DeleteAfter == 0 {
		opts.DeleteAfter = 1200 * time.Millisecond
	}
	if opts.ClientBeatInterval == 0 {
		opts.ClientBeatInterval = 100 * time.Millisecond
	}
	if opts.CacheMillis == 0 {
		opts.CacheMillis = 50
	}
	s := nacostest.NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

func newRegistry(t *testing.T, c Config) *Registry {
	t.Helper()
	if c.BeatInterval == "" {
		c.BeatInterval = "100ms"
	}
	r, err := New(c)
	require.NoError(t, err)
	return r
}

func TestConformance(t *testing.T) {
	s := fastServer(t, nacostest.Options{})
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		// No poll_interval: the watch follows the double's cacheMillis.
		return newRegistry(t, Config{Servers: []string{s.URL}})
	})
}

func TestConformanceWithAuthAndNamespace(t *testing.T) {
	s := fastServer(t, nacostest.Options{Username: "nacos", Password: "s3cret"})
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		return newRegistry(t, Config{
			Servers: []string{s.Addr()}, Namespace: "dev", Group: "KITE", Cluster: "c-1",
			Username: "nacos", Password: "s3cret", PollInterval: "50ms",
		})
	})
	assert.Empty(t, s.Instances("", "KITE@@x"))
	assert.Positive(t, s.Count("POST /nacos/v1/auth/login"))
}

// TestRealNacos runs the conformance suite against a real Nacos server.
func TestRealNacos(t *testing.T) {
	addr := testkit.OptIn(t, "KITE_NACOS_ADDR", "a real Nacos server, which cannot be installed on the build machines; "+
		"set it to e.g. 127.0.0.1:8848, and KITE_NACOS_USERNAME/KITE_NACOS_PASSWORD if auth is on")
	old := spitest.RegistryWait
	spitest.RegistryWait = 30 * time.Second // stock cacheMillis is 10s
	defer func() { spitest.RegistryWait = old }()
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		return newRegistry(t, Config{
			Servers: []string{addr}, Username: os.Getenv("KITE_NACOS_USERNAME"), Password: os.Getenv("KITE_NACOS_PASSWORD"),
			BeatInterval: "5s", PollInterval: "200ms",
		})
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling the double's state
	}
}

func TestStoredShape(t *testing.T) {
	s := fastServer(t, nacostest.Options{})
	r := newRegistry(t, Config{Servers: []string{s.URL}, Group: "G1", Cluster: "east"})
	defer r.Close()
	in := spi.Instance{Service: "shape", Addr: "10.1.2.3:8080", Weight: 250, Version: "v3", Zone: "z1",
		Tags: []string{"b", "a"}, Metadata: map[string]string{"k": "v"}}
	require.NoError(t, r.Register(ctxT(t), in))
	got := s.Instances("", "G1@@shape")
	require.Len(t, got, 1)
	h := got[0]
	assert.Equal(t, "10.1.2.3#8080#east#G1@@shape", h.InstanceID)
	assert.Equal(t, 2.5, h.Weight)
	assert.True(t, h.Ephemeral && h.Healthy && h.Enabled)
	assert.Equal(t, map[string]string{"k": "v", "version": "v3", "zone": "z1", "tags": "b,a", "kite.weight": "250"}, h.Metadata)

	// An operator halves the weight in the console: Nacos's weight wins.
	resolved, err := r.Resolve(ctxT(t), "shape")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, resolved)
	_, err = r.api.call(ctxT(t), "PUT", "/v1/ns/instance", url.Values{
		"serviceName": {"G1@@shape"}, "ip": {"10.1.2.3"}, "port": {"8080"}, "clusterName": {"east"},
		"weight": {"0.5"}, "metadata": {`{"kite.weight":"250","version":"v3"}`},
	})
	require.NoError(t, err)
	resolved, err = r.Resolve(ctxT(t), "shape")
	require.NoError(t, err)
	require.Len(t, resolved, 1)
	assert.Equal(t, 50, resolved[0].Weight)
	assert.Equal(t, "v3", resolved[0].Version)
}

func TestHeartbeatKeepsInstanceAlive(t *testing.T) {
	s := fastServer(t, nacostest.Options{UnhealthyAfter: 300 * time.Millisecond, DeleteAfter: 600 * time.Millisecond, ClientBeatInterval: 50 * time.Millisecond})
	// beat_interval (100ms) paces the first beat; the server's 50ms
	// clientBeatInterval applies from its first answer on.
	r2 := newRegistry(t, Config{Servers: []string{s.URL}, BeatInterval: "100ms"})
	defer r2.Close()
	in := spi.Instance{Service: "alive", Addr: "127.0.0.1:9001"}
	require.NoError(t, r2.Register(ctxT(t), in))
	start := time.Now()
	waitFor(t, "1.5s of beats", func() bool { return time.Since(start) > 1500*time.Millisecond })
	got := s.Instances("", "alive")
	require.Len(t, got, 1, "kept alive past DeleteAfter by beats")
	assert.True(t, got[0].Healthy)
	beats := s.Count("PUT /nacos/v1/ns/instance/beat")
	// The server asked for a beat every 50ms: ~30 in 1.5s, not ~15 at 100ms.
	assert.Greater(t, beats, int64(18), "beats follow the server's clientBeatInterval")
	t.Logf("%d beats in 1.5s with clientBeatInterval=50ms", beats)
}

func TestReRegisterWhenServerForgets(t *testing.T) {
	for _, light := range []bool{true, false} {
		t.Run(fmt.Sprintf("lightBeat=%v", light), func(t *testing.T) {
			s := fastServer(t, nacostest.Options{LightBeatDisabled: !light, ClientBeatInterval: 30 * time.Millisecond})
			r := newRegistry(t, Config{Servers: []string{s.URL}, BeatInterval: "30ms"})
			defer r.Close()
			in := spi.Instance{Service: "forget", Addr: "127.0.0.1:9100", Version: "v9", Weight: 7, Metadata: map[string]string{"a": "b"}}
			require.NoError(t, r.Register(ctxT(t), in))
			registers := s.Count("POST /nacos/v1/ns/instance")
			// Wait for a beat answer so that the light-beat mode is known.
			waitFor(t, "two beats", func() bool { return s.Count("PUT /nacos/v1/ns/instance/beat") >= 2 })
			s.Reset() // a restarted Nacos: ephemeral data gone
			waitFor(t, "the instance to come back", func() bool { return len(s.Instances("", "forget")) == 1 })
			got, err := r.Resolve(ctxT(t), "forget")
			require.NoError(t, err)
			assert.Equal(t, []spi.Instance{in}, got)
			if light {
				// Light beats carry no instance: the server answers 20404
				// and the client registers again.
				assert.Greater(t, s.Count("POST /nacos/v1/ns/instance"), registers)
			} else {
				// Full beats let the server re-create the instance itself.
				assert.Equal(t, registers, s.Count("POST /nacos/v1/ns/instance"))
			}
		})
	}
}

// crash stops a registry's heartbeats and watches without deregistering,
// as a killed process would.
func (r *Registry) crash() {
	r.mu.Lock()
	r.closed = true
	regs := r.regs
	r.regs = nil
	r.mu.Unlock()
	r.cancel()
	for _, reg := range regs {
		<-reg.done
	}
	r.transport.CloseIdleConnections()
}

func TestDeadClientTurnsUnhealthyThenGone(t *testing.T) {
	s := fastServer(t, nacostest.Options{UnhealthyAfter: 400 * time.Millisecond, DeleteAfter: 900 * time.Millisecond, ClientBeatInterval: 50 * time.Millisecond})
	alive := newRegistry(t, Config{Servers: []string{s.URL}, BeatInterval: "50ms"})
	defer alive.Close()
	doomed := newRegistry(t, Config{Servers: []string{s.URL}, BeatInterval: "50ms"})
	obs := newRegistry(t, Config{Servers: []string{s.URL}, PollInterval: "50ms"})
	defer obs.Close()
	a := spi.Instance{Service: "dead", Addr: "127.0.0.1:9201"}
	d := spi.Instance{Service: "dead", Addr: "127.0.0.1:9202"}
	require.NoError(t, alive.Register(ctxT(t), a))
	require.NoError(t, doomed.Register(ctxT(t), d))
	w, err := obs.Watch(ctxT(t), "dead")
	require.NoError(t, err)
	defer w.Stop()
	for {
		got, err := w.Next(ctxT(t))
		require.NoError(t, err)
		if len(got) == 2 {
			break
		}
	}
	doomed.crash()
	crashed := time.Now()
	got, err := w.Next(ctxT(t))
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{a}, got, "the unhealthy instance is no longer served")
	unhealthyAfter := time.Since(crashed)
	// Still stored, unhealthy, until DeleteAfter.
	if stored := s.Instances("", "dead"); len(stored) == 2 {
		for _, h := range stored {
			if h.Port == 9202 {
				assert.False(t, h.Healthy)
			}
		}
	}
	waitFor(t, "removal", func() bool { return len(s.Instances("", "dead")) == 1 })
	t.Logf("dead instance left the watch after %v, removed after %v", unhealthyAfter.Round(10*time.Millisecond), time.Since(crashed).Round(10*time.Millisecond))
	assert.GreaterOrEqual(t, unhealthyAfter, 300*time.Millisecond)
}

func TestOutageKeepsLastKnown(t *testing.T) {
	s := fastServer(t, nacostest.Options{UnhealthyAfter: 10 * time.Second, DeleteAfter: 20 * time.Second})
	srv := newRegistry(t, Config{Servers: []string{s.URL}})
	defer srv.Close()
	cli := newRegistry(t, Config{Servers: []string{s.URL}, PollInterval: "30ms", Timeout: "300ms"})
	defer cli.Close()
	in := spi.Instance{Service: "outage", Addr: "127.0.0.1:9301", Zone: "z"}
	require.NoError(t, srv.Register(ctxT(t), in))
	w, err := cli.Watch(ctxT(t), "outage")
	require.NoError(t, err)
	defer w.Stop()
	got, err := w.Next(ctxT(t))
	require.NoError(t, err)
	require.Equal(t, []spi.Instance{in}, got)

	s.SetDown(true)
	// Polls fail; the watcher says nothing rather than an empty list.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err = w.Next(ctx)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	got, err = cli.Resolve(ctxT(t), "outage")
	require.NoError(t, err, "Resolve answers the last known list")
	assert.Equal(t, []spi.Instance{in}, got)
	_, err = cli.Resolve(ctxT(t), "never-seen")
	assert.Equal(t, spi.Unavailable, spi.CodeOf(err), "%v", err)
	assert.Error(t, srv.Register(ctxT(t), spi.Instance{Service: "outage", Addr: "127.0.0.1:9302"}))

	s.SetDown(false)
	in2 := spi.Instance{Service: "outage", Addr: "127.0.0.1:9303"}
	require.NoError(t, srv.Register(ctxT(t), in2))
	for {
		got, err = w.Next(ctxT(t))
		require.NoError(t, err)
		if len(got) == 2 {
			break
		}
	}
	assert.Equal(t, []spi.Instance{in, in2}, got)
}

func TestFailoverToNextServer(t *testing.T) {
	s := fastServer(t, nacostest.Options{})
	dead := nacostest.NewServer(nacostest.Options{})
	dead.SetDown(true)
	defer dead.Close()
	r := newRegistry(t, Config{Servers: []string{dead.URL, s.URL + "/nacos/"}, Timeout: "1s"})
	defer r.Close()
	in := spi.Instance{Service: "failover", Addr: "127.0.0.1:9401"}
	require.NoError(t, r.Register(ctxT(t), in))
	got, err := r.Resolve(ctxT(t), "failover")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, got)
	assert.Len(t, s.Instances("", "failover"), 1)
}

func TestAuth(t *testing.T) {
	s := fastServer(t, nacostest.Options{Username: "nacos", Password: "pw"})
	bad := newRegistry(t, Config{Servers: []string{s.URL}, Username: "nacos", Password: "wrong"})
	defer bad.Close()
	err := bad.Register(ctxT(t), spi.Instance{Service: "auth", Addr: "127.0.0.1:9501"})
	assert.Equal(t, spi.Unauthenticated, spi.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), "unknown user")

	none := newRegistry(t, Config{Servers: []string{s.URL}})
	defer none.Close()
	_, err = none.Resolve(ctxT(t), "auth")
	assert.Equal(t, spi.PermissionDenied, spi.CodeOf(err), "%v", err)

	good := newRegistry(t, Config{Servers: []string{s.URL}, Username: "nacos", Password: "pw"})
	defer good.Close()
	require.NoError(t, good.Register(ctxT(t), spi.Instance{Service: "auth", Addr: "127.0.0.1:9502"}))
	logins := s.Count("POST /nacos/v1/auth/login")
	s.ExpireTokens()
	got, err := good.Resolve(ctxT(t), "auth")
	require.NoError(t, err, "a refused token is renewed and the call retried")
	assert.Len(t, got, 1)
	assert.Equal(t, logins+1, s.Count("POST /nacos/v1/auth/login"))
}

func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	s := fastServer(t, nacostest.Options{Username: "u", Password: "p", TokenTTL: 2 * time.Second})
	r := newRegistry(t, Config{Servers: []string{s.URL}, Username: "u", Password: "p"})
	defer r.Close()
	_, err := r.Resolve(ctxT(t), "tok")
	require.NoError(t, err)
	r.api.authMu.Lock()
	refresh := r.api.refreshAt
	r.api.authMu.Unlock()
	// 90% of the 2s TTL.
	assert.WithinDuration(t, time.Now().Add(1800*time.Millisecond), refresh, 300*time.Millisecond)
	r.api.authMu.Lock()
	r.api.refreshAt = time.Now().Add(-time.Millisecond) // as if 1.8s had passed
	r.api.authMu.Unlock()
	_, err = r.Resolve(ctxT(t), "tok")
	require.NoError(t, err)
	assert.Equal(t, int64(2), s.Count("POST /nacos/v1/auth/login"), "logged in again before the token expired")
	assert.Equal(t, int64(2), s.Count("GET /nacos/v1/ns/instance/list"), "no call was refused and retried")
}

func TestInvalidInput(t *testing.T) {
	s := fastServer(t, nacostest.Options{})
	r := newRegistry(t, Config{Servers: []string{s.URL}})
	defer r.Close()
	for _, in := range []spi.Instance{
		{Service: "", Addr: "127.0.0.1:1"},
		{Service: "a@@b", Addr: "127.0.0.1:1"},
		{Service: "s", Addr: "unix:///tmp/x.sock"},
		{Service: "s", Addr: "127.0.0.1:0"},
		{Service: "s", Addr: "127.0.0.1:1", Tags: []string{"a,b"}},
		{Service: "s", Addr: "127.0.0.1:1", Metadata: map[string]string{"version": "x"}},
	} {
		err := r.Register(ctxT(t), in)
		assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err), "%+v: %v", in, err)
	}
	// A name Nacos itself refuses: its 400 comes back as InvalidArgument.
	err := r.Register(ctxT(t), spi.Instance{Service: "bad name", Addr: "127.0.0.1:1"})
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), "whitespace", "checked locally, as Nacos's serviceName pattern would refuse it")
}

func TestConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "servers is required"},
		{Config{Servers: []string{"ftp://x"}}, "scheme"},
		{Config{Servers: []string{"x:1"}, Username: "u"}, "username and password"},
		{Config{Servers: []string{"x:1"}, BeatInterval: "often"}, "beat_interval"},
		{Config{Servers: []string{"x:1"}, PollInterval: "-1s"}, "poll_interval must be positive"},
		{Config{Servers: []string{"x:1"}, Group: "a@@b"}, "group"},
	} {
		_, err := New(c.cfg)
		if assert.Error(t, err, "%+v", c.cfg) {
			assert.Contains(t, err.Error(), c.want)
		}
	}
	for in, want := range map[string]string{
		"127.0.0.1:8848":            "http://127.0.0.1:8848/nacos",
		"https://n.example:443":     "https://n.example:443/nacos",
		"http://10.0.0.1:8848/ctx/": "http://10.0.0.1:8848/ctx",
	} {
		u, err := parseServer(in)
		require.NoError(t, err)
		assert.Equal(t, want, u.String())
	}
}

func TestCatalogEntry(t *testing.T) {
	e, ok := spi.Default.Lookup(spi.KindRegistry, Name)
	require.True(t, ok)
	var names []string
	for _, f := range e.Schema {
		names = append(names, f.Name)
	}
	assert.Subset(t, names, []string{"servers", "namespace", "group", "cluster", "username", "password", "beat_interval"})
	_, err := spi.Default.BuildRegistry(Name, spi.Config(`{"servers":["127.0.0.1:8848"],"nope":true}`))
	assert.ErrorContains(t, err, "nope")
	reg, err := spi.Default.BuildRegistry(Name, spi.Config(`{"servers":["127.0.0.1:8848"],"group":"G"}`))
	require.NoError(t, err)
	require.NoError(t, reg.Close())
	require.NoError(t, reg.Close())
}

func TestCloseDeregistersEverything(t *testing.T) {
	s := fastServer(t, nacostest.Options{})
	r := newRegistry(t, Config{Servers: []string{s.URL}})
	for i := range 5 {
		require.NoError(t, r.Register(ctxT(t), spi.Instance{Service: "bye", Addr: fmt.Sprintf("127.0.0.1:%d", 9600+i)}))
	}
	require.Len(t, s.Instances("", "bye"), 5)
	require.NoError(t, r.Close())
	assert.Empty(t, s.Instances("", "bye"))
	err := r.Register(ctxT(t), spi.Instance{Service: "bye", Addr: "127.0.0.1:9700"})
	assert.True(t, errors.Is(err, spi.ErrFailedPrecondition), "%v", err)
	assert.True(t, strings.Contains(err.Error(), "closed"))
}
