package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core/admin"
)

func startProbes(t *testing.T, o admin.ProbeOptions) *admin.Probes {
	t.Helper()
	o.Listen = "127.0.0.1:0"
	p, err := admin.NewProbes(o)
	require.NoError(t, err)
	require.NoError(t, p.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, p.Close(ctx))
	})
	return p
}

func (f *fakeSource) set(h ...admin.ServerHealth) {
	f.mu.Lock()
	f.health = h
	f.mu.Unlock()
}

// TestProbesFollowServerStates walks a server through its life and reads
// both probes over real HTTP at each step.
func TestProbesFollowServerStates(t *testing.T) {
	src := &fakeSource{}
	p := startProbes(t, admin.ProbeOptions{Source: src, WantServers: true})
	base := "http://" + p.Addr()

	code, body, hdr := get(t, base+"/readyz")
	assert.Equal(t, 503, code, "a process that will serve is not ready before its first server")
	assert.Equal(t, "no server started yet\n", body)
	assert.Equal(t, "text/plain; charset=utf-8", hdr.Get("Content-Type"))
	assert.Equal(t, "no-store", hdr.Get("Cache-Control"))
	code, _, _ = get(t, base+"/healthz")
	assert.Equal(t, 200, code, "live while starting")

	sv := func(state, status string) admin.ServerHealth {
		return admin.ServerHealth{Name: "echo", State: state, Status: status, Services: map[string]string{"Echo": status}}
	}
	steps := []struct {
		state, status string
		live, ready   int
		why           string
	}{
		{admin.StateStarting, "NOT_SERVING", 200, 503, "server echo is starting"},
		{admin.StateServing, "SERVING", 200, 200, "ok"},
		// A health service set NOT_SERVING by the program (Stack.Health).
		{admin.StateServing, "NOT_SERVING", 200, 503, "server echo is not serving"},
		{admin.StateDraining, "NOT_SERVING", 200, 503, "server echo is draining"},
		{admin.StateStopped, "NOT_SERVING", 503, 503, "server echo is stopped"},
	}
	for _, s := range steps {
		src.set(sv(s.state, s.status))
		code, body, _ := get(t, base+"/readyz")
		assert.Equal(t, s.ready, code, "readyz while %s/%s", s.state, s.status)
		assert.Equal(t, s.why+"\n", body)
		code, body, _ = get(t, base+"/healthz")
		assert.Equal(t, s.live, code, "healthz while %s/%s: %s", s.state, s.status, body)
	}
	code, body, _ = get(t, base+"/healthz")
	assert.Equal(t, 503, code)
	assert.Equal(t, "server echo stopped\n", body)

	// Two servers: ready only when both are.
	src.set(sv(admin.StateServing, "SERVING"), admin.ServerHealth{Name: "grpc", State: admin.StateStarting, Status: "NOT_SERVING"})
	code, body, _ = get(t, base+"/readyz")
	assert.Equal(t, 503, code)
	assert.Equal(t, "server grpc is starting\n", body)
}

func TestProbesClientOnlyProcessIsReady(t *testing.T) {
	p := startProbes(t, admin.ProbeOptions{Source: &fakeSource{}})
	for _, path := range []string{"/healthz", "/readyz"} {
		code, body, _ := get(t, "http://"+p.Addr()+path)
		assert.Equal(t, 200, code, path)
		assert.Equal(t, "ok\n", body, path)
	}
}

// TestProbesServeNothingElse: the probe listener is safe to bind the pod
// IP because it answers the two probes and nothing else: no pprof, no
// metrics, no status page, no other method.
func TestProbesServeNothingElse(t *testing.T) {
	src := &fakeSource{}
	src.set(admin.ServerHealth{Name: "echo", State: admin.StateServing, Status: "SERVING"})
	p := startProbes(t, admin.ProbeOptions{Source: src})
	base := "http://" + p.Addr()
	for _, path := range []string{"/", "/metrics", "/debug/pprof/", "/debug/pprof/goroutine?debug=1",
		"/debug/pprof/cmdline", "/healthz/x", "/readyz/", "/livez/"} {
		code, body, _ := get(t, base+path)
		assert.Equal(t, 404, code, path)
		assert.NotContains(t, body, "goroutine", path)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		req, err := http.NewRequest(method, base+"/readyz", strings.NewReader("x"))
		require.NoError(t, err)
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, method)
	}
	// /livez is /healthz under the Kubernetes API server's name.
	code, body, _ := get(t, base+"/livez")
	assert.Equal(t, 200, code)
	assert.Equal(t, "ok\n", body)

	// HEAD works (some probers use it) and has no body.
	resp, err := c.Head(base + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
}

// TestAdminPprofOffByDefault: an admin listener built without Pprof (the
// kite.hcl default) does not serve profiles.
func TestAdminPprofOffByDefault(t *testing.T) {
	s := start(t, admin.Options{Source: &fakeSource{}})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		code, _, _ := get(t, "http://"+s.Addr()+path)
		assert.Equal(t, 404, code, path)
	}
}

func TestProbesNeedASource(t *testing.T) {
	_, err := admin.NewProbes(admin.ProbeOptions{})
	assert.ErrorContains(t, err, "Source is required")
}

func TestProbesListenError(t *testing.T) {
	p := startProbes(t, admin.ProbeOptions{Source: &fakeSource{}})
	q, err := admin.NewProbes(admin.ProbeOptions{Source: &fakeSource{}, Listen: p.Addr()})
	require.NoError(t, err)
	err = q.Start()
	require.Error(t, err, "the address is taken")
	assert.Contains(t, err.Error(), "probe listener: listening on "+p.Addr())
	assert.Error(t, p.Start(), "a second Start of a running listener fails")
}
