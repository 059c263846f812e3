package nacos

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/plugins/registry-nacos/nacostest"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// TestConformanceV3 runs the suite over the Nacos 3 client API.
func TestConformanceV3(t *testing.T) {
	s := fastServer(t, nacostest.Options{V1Disabled: true})
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		return newRegistry(t, Config{Servers: []string{s.URL}, API: "v3", PollInterval: "50ms"})
	})
	assert.Zero(t, s.Count("POST /nacos/v1/ns/instance"), "api = v3 never tries v1")
	assert.Positive(t, s.Count("POST /nacos/v3/client/ns/instance"))
}

// TestFallbackOn410: with api unset, a server whose v1 client API is off
// (410) is spoken to through v3 from the first 410 on, login included.
func TestFallbackOn410(t *testing.T) {
	s := fastServer(t, nacostest.Options{V1Disabled: true, Username: "nacos", Password: "pw"})
	r := newRegistry(t, Config{Servers: []string{s.URL}, Username: "nacos", Password: "pw", PollInterval: "50ms"})
	defer r.Close()
	in := spi.Instance{Service: "fallback", Addr: "127.0.0.1:9001", Version: "v1", Weight: 30}
	require.NoError(t, r.Register(ctxT(t), in))
	got, err := r.Resolve(ctxT(t), "fallback")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, got)
	assert.Equal(t, int64(1), s.Count("POST /nacos/v1/ns/instance"), "one v1 attempt, answered 410")
	assert.Equal(t, int64(1), s.Count("POST /nacos/v1/auth/login"), "login falls back too")
	assert.Positive(t, s.Count("POST /nacos/v3/auth/user/login"))
	assert.Zero(t, s.Count("GET /nacos/v1/ns/instance/list"), "after the switch, v1 is not tried again")
	// Heartbeats go through v3 (heartBeat=true) and keep it past DeleteAfter.
	time.Sleep(1500 * time.Millisecond) // > DeleteAfter (1.2s): only beats keep the instance
	assert.Len(t, s.Instances("", "fallback"), 1)
	assert.Zero(t, s.Count("PUT /nacos/v1/ns/instance/beat"))
	require.NoError(t, r.Deregister(ctxT(t), in))
	assert.Empty(t, s.Instances("", "fallback"))

	// Pinned to v1, the 410 is an error that says what to do.
	v1 := newRegistry(t, Config{Servers: []string{s.URL}, Username: "nacos", Password: "pw", API: "v1"})
	defer v1.Close()
	err = v1.Register(ctxT(t), in)
	require.Error(t, err)
	assert.Equal(t, spi.FailedPrecondition, spi.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), "410")
}

// TestV3HeartbeatReRegisters: a v3 heartbeat for an instance the server
// lost answers code 21003, and the registry registers it again.
func TestV3HeartbeatReRegisters(t *testing.T) {
	s := fastServer(t, nacostest.Options{})
	r := newRegistry(t, Config{Servers: []string{s.URL}, API: "v3"})
	defer r.Close()
	in := spi.Instance{Service: "back", Addr: "127.0.0.1:9002", Zone: "z"}
	require.NoError(t, r.Register(ctxT(t), in))
	s.Reset()
	waitFor(t, "re-registration after 21003", func() bool { return len(s.Instances("", "back")) == 1 })
	got, err := r.Resolve(ctxT(t), "back")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, got)
}

// TestNacosLimitsCheckedLocally: what Nacos refuses with a 400 fails at
// Register with InvalidArgument, before any request; what it accepts
// passes. The double enforces the same limits, so the boundary cases are
// also sent to it.
func TestNacosLimitsCheckedLocally(t *testing.T) {
	s := fastServer(t, nacostest.Options{})
	r := newRegistry(t, Config{Servers: []string{s.URL}})
	defer r.Close()
	base := spi.Instance{Service: "limits", Addr: "127.0.0.1:9003"}

	// Weight: Kite 1,000,000 is Nacos 10000.0, the maximum.
	ok := base
	ok.Weight = 1_000_000
	require.NoError(t, r.Register(ctxT(t), ok))
	bad := base
	bad.Weight = 1_000_001
	err := r.Register(ctxT(t), bad)
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), "above Nacos's maximum of 10000")

	// Metadata: 1024 UTF-16 units of keys and values in total, Kite's own
	// keys included ("kite.weight" + "0" = 12 here).
	fill := func(n int) map[string]string { return map[string]string{"k": strings.Repeat("λ", n-1)} }
	ok = base
	ok.Metadata = fill(1024 - 12)
	require.NoError(t, r.Register(ctxT(t), ok))
	bad = base
	bad.Metadata = fill(1024 - 12 + 1)
	err = r.Register(ctxT(t), bad)
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), "at most 1024")
	emoji := base // a rune outside the BMP is two UTF-16 units, as Java counts
	emoji.Metadata = map[string]string{"k": strings.Repeat("😀", 507)}
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(r.Register(ctxT(t), emoji)))

	// The double (like Nacos) refuses the same over the wire.
	before := s.Count("POST /nacos/v1/ns/instance")
	_, err = r.api.call(ctxT(t), http.MethodPost, "/v1/ns/instance", url.Values{
		"serviceName": {"DEFAULT_GROUP@@limits"}, "ip": {"127.0.0.1"}, "port": {"9003"},
		"metadata": {`{"k":"` + strings.Repeat("x", 1025) + `"}`}})
	assert.Equal(t, spi.InvalidArgument, wrap(err, "raw").(*spi.Error).Code)
	assert.Contains(t, err.Error(), "Param 'Metadata' is illegal, the param length should not exceed 1024.")
	_, err = r.api.call(ctxT(t), http.MethodPost, "/v1/ns/instance", url.Values{
		"serviceName": {"DEFAULT_GROUP@@limits"}, "ip": {"127.0.0.1"}, "port": {"9003"}, "weight": {"10000.01"}})
	assert.Contains(t, err.Error(), "The weights range from 0.0 to 10000.0")
	assert.Equal(t, before+2, s.Count("POST /nacos/v1/ns/instance"), "only the raw calls reached the server")

	for _, name := range []string{"has space", "@lead", "名字", strings.Repeat("x", 513)} {
		err := r.Register(ctxT(t), spi.Instance{Service: name, Addr: "127.0.0.1:1"})
		assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err), "%q: %v", name, err)
	}
	for _, c := range []Config{
		{Servers: []string{s.URL}, Cluster: "a.b"},
		{Servers: []string{s.URL}, Cluster: strings.Repeat("c", 65)},
		{Servers: []string{s.URL}, Group: "g/1"},
		{Servers: []string{s.URL}, API: "v2"},
	} {
		_, err := New(c)
		assert.Error(t, err, "%+v", c)
	}
	_, err = New(Config{Servers: []string{s.URL}, Cluster: "under_score-1"})
	assert.NoError(t, err, "Nacos 2.3+ accepts '_' in cluster names")
}

// TestProtectThreshold24: the double computes the protect threshold as
// Nacos 2.4 does, over the list healthyOnly leaves. Through v1
// (healthyOnly=true) an unhealthy instance is never returned; through the
// v3 list (all instances) it is returned as healthy when the healthy share
// is at or below the threshold.
func TestProtectThreshold24(t *testing.T) {
	s := fastServer(t, nacostest.Options{ProtectThreshold: 0.6, UnhealthyAfter: 300 * time.Millisecond, DeleteAfter: 5 * time.Second})
	alive := newRegistry(t, Config{Servers: []string{s.URL}})
	defer alive.Close()
	crashed := newRegistry(t, Config{Servers: []string{s.URL}})
	defer crashed.Close()
	a := spi.Instance{Service: "protect", Addr: "127.0.0.1:9011"}
	b := spi.Instance{Service: "protect", Addr: "127.0.0.1:9012"}
	require.NoError(t, alive.Register(ctxT(t), a))
	require.NoError(t, crashed.Register(ctxT(t), b))
	crashed.cancel() // its heartbeats stop
	waitFor(t, "b unhealthy", func() bool {
		for _, in := range s.Instances("", "protect") {
			if in.Port == 9012 && !in.Healthy {
				return true
			}
		}
		return false
	})
	v1 := newRegistry(t, Config{Servers: []string{s.URL}, API: "v1"})
	defer v1.Close()
	got, err := v1.Resolve(ctxT(t), "protect")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{a}, got, "healthyOnly=true: 1 of 1 healthy, above the threshold")
	v3 := newRegistry(t, Config{Servers: []string{s.URL}, API: "v3"})
	defer v3.Close()
	got, err = v3.Resolve(ctxT(t), "protect")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{a, b}, got, "all instances: 1 of 2 healthy <= 0.6, so all are served")
}

// TestV3BadAnswers: garbage and error results from the v3 API are clear
// errors, not crashes.
func TestV3BadAnswers(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"garbage": func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("\x00{{")) },
		"code": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"code":30000,"message":"server is busy","data":null}`))
		},
		"data": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"code":0,"message":"success","data":{"hosts":1}}`))
		},
		"500": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) },
	} {
		t.Run(name, func(t *testing.T) {
			hs := newHTTPServer(t, h)
			r := newRegistry(t, Config{Servers: []string{hs}, API: "v3"})
			defer r.Close()
			_, err := r.Resolve(ctxT(t), "x")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "nacos registry")
			t.Log(err)
			if name != "data" { // a register answered code 0 succeeded
				err = r.Register(ctxT(t), spi.Instance{Service: "x", Addr: "127.0.0.1:1"})
				require.Error(t, err)
				t.Log(err)
			}
		})
	}
}

func newHTTPServer(t *testing.T, h http.HandlerFunc) string {
	hs := httptestServer(h)
	t.Cleanup(hs.Close)
	return hs.URL
}

func httptestServer(h http.HandlerFunc) *httptest.Server { return httptest.NewServer(h) }

// TestRealNacosV3 runs the suite against a real Nacos 3 through its client
// API (api = "v3"); opt-in like TestRealNacos, with the same variables.
func TestRealNacosV3(t *testing.T) {
	addr := testkit.OptIn(t, "KITE_NACOS_ADDR", "a real Nacos 3 server, which cannot be installed on the build machines; "+
		"set it to e.g. 127.0.0.1:8848, and KITE_NACOS_USERNAME/KITE_NACOS_PASSWORD if auth is on")
	old := spitest.RegistryWait
	spitest.RegistryWait = 30 * time.Second
	defer func() { spitest.RegistryWait = old }()
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		return newRegistry(t, Config{
			Servers: []string{addr}, Username: os.Getenv("KITE_NACOS_USERNAME"), Password: os.Getenv("KITE_NACOS_PASSWORD"),
			BeatInterval: "5s", PollInterval: "200ms", API: "v3",
		})
	})
}
