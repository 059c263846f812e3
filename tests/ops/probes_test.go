package ops

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// probesStack has both listeners as a Kubernetes deployment would: the
// probe listener for the kubelet, the admin listener on loopback with
// pprof left at its default (off).
const probesStack = `
admin  { listen = "127.0.0.1:0" }
probes { listen = "127.0.0.1:0" }

registry "local" "main" {
  dir           = "{{DIR}}/registry"
  poll_interval = "10ms"
}

server "echo" {
  listen           = "127.0.0.1:0"
  registry         = "main"
  shutdown_timeout = "10s"
}

client "echo" {
  registry = "main"
  timeout  = "5s"
}
`

// TestProbesThroughAShutdown serves a real server with a probes block and
// reads the probes over HTTP: ready and live while serving; during the
// drain of a shutdown (a call in flight holds it open) not ready but
// still live; after the server stopped, neither.
func TestProbesThroughAShutdown(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "kite.hcl", hcl(probesStack, "{{DIR}}", dir))
	svc := &echo{name: "a", hold: make(chan struct{}), entered: make(chan struct{}, 1)}
	s := serve(t, path, "echo", svc)
	probes := s.st.ProbesAddr()
	require.NotEmpty(t, probes, "Serve starts the probe listener of the probes block")
	require.NotEqual(t, s.st.AdminAddr(), probes, "probes and admin are separate listeners")
	base := "http://" + probes

	// serve returns once the instance is registered: ready.
	code, body := httpGet(t, base+"/readyz")
	require.Equal(t, 200, code, body)
	assert.Equal(t, "ok\n", body)
	code, body = httpGet(t, base+"/healthz")
	require.Equal(t, 200, code, body)

	c, err := s.st.Client("echo")
	require.NoError(t, err)
	callDone := make(chan error, 1)
	go func() {
		var r EchoResp
		callDone <- c.Call(t.Context(), "Echo.Slow", &EchoReq{Text: "held"}, &r)
	}()
	select {
	case <-svc.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the held call never reached the handler")
	}
	started := time.Now()
	s.cancel() // Shutdown starts; the held call keeps the drain open

	var flipped time.Duration
	waitFor(t, "/readyz to answer 503", 5*time.Second, func() bool {
		code, body = httpGet(t, base+"/readyz")
		flipped = time.Since(started)
		return code == 503
	})
	assert.Equal(t, "server echo is draining\n", body)
	code, body = httpGet(t, base+"/healthz")
	assert.Equal(t, 200, code, "a draining process is live: the kubelet must not kill it mid-drain (%s)", body)
	t.Logf("/readyz answered 503 %s after the shutdown started, with a call still in flight", flipped.Round(time.Microsecond))

	close(svc.hold)
	require.NoError(t, <-callDone, "the call in flight finishes during the drain")
	select {
	case err := <-s.done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	s.done <- nil // for the cleanup
	code, body = httpGet(t, base+"/readyz")
	assert.Equal(t, 503, code, body)
	code, body = httpGet(t, base+"/healthz")
	assert.Equal(t, 503, code, "a process whose server stopped is not live")
	assert.Equal(t, "server echo stopped\n", body)

	// Close stops the probe listener with the stack.
	require.NoError(t, s.st.Close())
	assert.Empty(t, s.st.ProbesAddr())
	conn, err := net.DialTimeout("tcp", probes, time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("the probe listener %s still accepts after Close", probes)
	}
}

// TestProbesExposeNothingElse: the probe listener carries no pprof,
// metrics or status page, and the admin listener carries no pprof
// unless the admin block asks for it.
func TestProbesExposeNothingElse(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "kite.hcl", hcl(probesStack, "{{DIR}}", dir))
	s := serve(t, path, "echo", &echo{name: "a"})
	for _, p := range []string{"/", "/metrics", "/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/heap"} {
		code, _ := httpGet(t, "http://"+s.st.ProbesAddr()+p)
		assert.Equal(t, 404, code, "probe listener %s", p)
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/heap"} {
		code, _ := httpGet(t, "http://"+s.st.AdminAddr()+p)
		assert.Equal(t, 404, code, "admin listener %s with pprof left at its default", p)
	}
	code, _ := httpGet(t, "http://"+s.st.AdminAddr()+"/metrics")
	assert.Equal(t, 200, code, "the admin listener still serves /metrics")

	// pprof = true turns profiles on, on the admin listener only.
	dir2 := t.TempDir()
	src := hcl(probesStack, "{{DIR}}", dir2)
	src = hcl(src, `admin  { listen = "127.0.0.1:0" }`, "admin {\n  listen = \"127.0.0.1:0\"\n  pprof  = true\n}")
	s2 := serve(t, writeFile(t, dir2, "kite.hcl", src), "echo", &echo{name: "b"})
	code, body := httpGet(t, "http://"+s2.st.AdminAddr()+"/debug/pprof/goroutine?debug=1")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, "goroutine")
	code, _ = httpGet(t, "http://"+s2.st.ProbesAddr()+"/debug/pprof/goroutine?debug=1")
	assert.Equal(t, 404, code, "never on the probe listener")
}
