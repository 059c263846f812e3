package stack_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"
)

const localStack = `
registry "local" "main" {
  dir           = "{{DIR}}/registry"
  poll_interval = "10ms"
}

server "echo" {
  listen   = "127.0.0.1:0"
  registry = "main"
  version  = "v1"
  zone     = "z1"
  weight   = 7
  tags     = ["a", "b"]
  metadata = { team = "kite" }
  shutdown_timeout = "2s"

  limits {
    max_concurrency = 100
    max_frame       = "1MiB"
  }
  compression {
    name      = "snappy"
    threshold = 64
  }
}

client "echo" {
  registry = "main"
  balancer = "round_robin"
  timeout  = "2s"
  compression {
    name      = "snappy"
    threshold = 64
  }
}
`

func TestServeRegistersAndClientCallsThroughRegistry(t *testing.T) {
	dir := t.TempDir()
	path := writeHCL(t, dir, "kite.hcl", localStack)
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()

	svc := &echo{name: "a", version: "v1"}
	in, stop := serving(t, st, "echo", svc)
	assert.Equal(t, "echo", in.Service)
	assert.True(t, strings.HasPrefix(in.Addr, "127.0.0.1:") && !strings.HasSuffix(in.Addr, ":0"), in.Addr)
	assert.Equal(t, 7, in.Weight)
	assert.Equal(t, "z1", in.Zone)
	assert.Equal(t, []string{"a", "b"}, in.Tags)
	assert.Equal(t, map[string]string{"team": "kite"}, in.Metadata)

	reg, err := st.Registry("main")
	require.NoError(t, err)
	got, err := reg.Resolve(context.Background(), "echo")
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, in.Addr, got[0].Addr)
	assert.Equal(t, "v1", got[0].Version)

	c, err := st.Client("echo")
	require.NoError(t, err)
	var resp EchoResp
	// A body above the compression threshold exercises snappy both ways.
	long := strings.Repeat("kite ", 100)
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: long}, &resp))
	assert.Equal(t, long, resp.Text)
	assert.Equal(t, "a", resp.Server)

	err = c.Call(context.Background(), "Echo.Fail", &EchoReq{Text: "thing"}, &resp)
	assert.Equal(t, spi.NotFound, spi.CodeOf(err), "%v", err)

	require.NoError(t, stop())
	got, err = reg.Resolve(context.Background(), "echo")
	require.NoError(t, err)
	assert.Empty(t, got, "Serve deregisters on shutdown")
}

func TestServeDeregistersBeforeShutdown(t *testing.T) {
	dir := t.TempDir()
	path := writeHCL(t, dir, "kite.hcl", `
registry "mem" "m" {}
server "echo" {
  listen   = "127.0.0.1:0"
  registry = "m"
}
`)
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	in, stop := serving(t, st, "echo", &echo{name: "a"})
	require.NoError(t, stop())
	reg, err := st.Registry("m")
	require.NoError(t, err)
	assert.Equal(t, []string{
		"register " + in.Addr,
		"deregister " + in.Addr + " (listener open)",
	}, reg.(interface{ Events() []string }).Events())
}

func TestServeDrainsCallsInFlight(t *testing.T) {
	dir := t.TempDir()
	path := writeHCL(t, dir, "kite.hcl", `
registry "mem" "m" {}
server "echo" {
  listen   = "127.0.0.1:0"
  registry = "m"
  shutdown_timeout = "5s"
}
client "echo" {
  registry = "m"
  timeout  = "5s"
}
`)
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	svc := &echo{name: "a"}
	_, stop := serving(t, st, "echo", svc)
	c, err := st.Client("echo")
	require.NoError(t, err)
	var resp EchoResp
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "warm"}, &resp))

	done := make(chan error, 1)
	go func() {
		var r EchoResp
		done <- c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "slow", Sleep: "300ms"}, &r)
	}()
	require.Eventually(t, func() bool { return svc.calls.Load() == 2 }, 5*time.Second, time.Millisecond)
	require.NoError(t, stop(), "shutdown waits for the call in flight")
	require.NoError(t, <-done)
}

func TestStaticTargetsFiltersAndMethodTimeouts(t *testing.T) {
	dir := t.TempDir()
	spath := writeHCL(t, dir, "server.hcl", `
server "echo" {
  listen   = "127.0.0.1:0"
  registry = "none"
}
`)
	cat := testCatalog(t)
	sst, err := stack.Load(spath, stack.WithCatalog(cat), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer sst.Close()
	in, _ := serving(t, sst, "echo", &echo{name: "static"})

	cpath := writeHCL(t, dir, "client.hcl", fmt.Sprintf(`
client "echo" {
  target  = [%q]
  timeout = "2s"
  pool {
    conns_per_endpoint = 3
    idle_timeout       = "0s"
  }
  heartbeat {
    interval = "0s"
  }
  method "Echo.Echo" {
    timeout = "50ms"
  }
}
`, in.Addr))
	cst, err := stack.Load(cpath, stack.WithCatalog(cat), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer cst.Close()
	c, err := cst.Client("echo")
	require.NoError(t, err)
	var resp EchoResp
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "hi"}, &resp))
	assert.Equal(t, "static", resp.Server)
	start := time.Now()
	err = c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "slow", Sleep: "1s"}, &resp)
	assert.Equal(t, spi.DeadlineExceeded, spi.CodeOf(err), "method timeout applies: %v", err)
	assert.Less(t, time.Since(start), 900*time.Millisecond)
}

func TestBuildErrorsNamePosition(t *testing.T) {
	dir := t.TempDir()
	path := writeHCL(t, dir, "kite.hcl", `
filter "broken" "b" {
  why = "testing"
}

server "echo" {
  listen   = "127.0.0.1:0"
  registry = "none"
  filters  = ["b"]
}

client "echo" {
  target  = ["127.0.0.1:1"]
  filters = ["broken"]
}
`)
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	_, err = st.Server("echo")
	require.Error(t, err)
	// The block declaring the filter.
	assert.Contains(t, err.Error(), path+":2:1: building filter \"broken\" \"b\"")
	assert.Contains(t, err.Error(), "broken on purpose")

	_, err = st.Client("echo")
	require.Error(t, err)
	// No block: the reference in the client's filters list.
	assert.Contains(t, err.Error(), path+":14:13: building filter \"broken\"")

	_, err = st.Client("nope")
	assert.ErrorContains(t, err, `no client block named "nope"`)
}

func TestConfigErrorsNamePosition(t *testing.T) {
	dir := t.TempDir()
	path := writeHCL(t, dir, "kite.hcl", "client \"echo\" {\n  timout = \"1s\"\n}\n")
	_, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), path+":2:3: "), err.Error())
}

func TestWrongSHA256NamesTheFile(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kite-registry-fake")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755))
	path := writeHCL(t, dir, "kite.hcl", fmt.Sprintf(`
plugin "registry" "fake" {
  path   = "./kite-registry-fake"
  sha256 = "%s"
}
`, strings.Repeat("0", 64)))
	// Plugins start lazily: Load does not run the binary, Check and
	// StartPlugins do.
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	err = st.StartPlugins()
	require.Error(t, err)
	_, cerr := stack.Check(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.Error(t, cerr)
	assert.Equal(t, err.Error(), cerr.Error())
	assert.Contains(t, err.Error(), path+":4:12", "at the sha256 attribute's value")
	assert.Contains(t, err.Error(), bin, "the message names the binary")
	sum := sha256.Sum256([]byte("#!/bin/sh\nexit 0\n"))
	assert.Contains(t, err.Error(), hex.EncodeToString(sum[:]), "and its actual checksum")
}

const reloadStack = `
registry "mem" "m" {}

server "v1" {
  listen       = "127.0.0.1:0"
  registry     = "m"
  service_name = "echo"
  version      = "v1"
}

server "v2" {
  listen       = "127.0.0.1:0"
  registry     = "m"
  service_name = "echo"
  version      = "v2"
}

balancer "version" "pick" {
  version = "%s"
}

client "echo" {
  registry = "m"
  balancer = "pick"
  timeout  = "%s"
}
`

// TestReloadUnderLoad swaps the balancer back and forth while 8 callers
// keep calling: every call must succeed, and after each reload the calls
// must move to the instance the new balancer picks.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := writeHCL(t, dir, "kite.hcl", fmt.Sprintf(reloadStack, "v1", "2s"))
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	serving(t, st, "v1", &echo{name: "one", version: "v1"})
	serving(t, st, "v2", &echo{name: "two", version: "v2"})
	c, err := st.Client("echo")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(c.Instances()) == 2 }, 5*time.Second, time.Millisecond)

	load := startLoad(c, 8, func(r *EchoResp) string { return r.Version })
	want := []string{"v2", "v1", "v2", "v1", "v2", "v1"}
	for i, v := range want {
		writeHCL(t, dir, "kite.hcl", fmt.Sprintf(reloadStack, v, fmt.Sprintf("%ds", 2+i)))
		rep, err := st.ReloadReport(path)
		require.NoError(t, err)
		require.NotEmpty(t, rep.Applied)
		assert.Contains(t, rep.Applied[0], "balancer")
		// Calls after the swap land on the new version: wait for answers
		// from calls placed after the reload.
		load.moved(t, v, "reload %d to %s", i, v)
	}
	load.stop(t)
	require.Greater(t, load.calls.Load(), int64(100))
}

func TestReloadTimeoutsAndRefusals(t *testing.T) {
	dir := t.TempDir()
	path := writeHCL(t, dir, "kite.hcl", fmt.Sprintf(reloadStack, "v1", "50ms"))
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	serving(t, st, "v1", &echo{name: "one", version: "v1"})
	c, err := st.Client("echo")
	require.NoError(t, err)
	var resp EchoResp
	err = c.Call(context.Background(), "Echo.Echo", &EchoReq{Sleep: "300ms"}, &resp)
	require.Equal(t, spi.DeadlineExceeded, spi.CodeOf(err), "%v", err)

	// A broken file changes nothing.
	writeHCL(t, dir, "kite.hcl", "client \"echo\" {\n  timeout = \"soon\"\n}\n")
	err = st.Reload(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path+":2:")
	err = c.Call(context.Background(), "Echo.Echo", &EchoReq{Sleep: "300ms"}, &resp)
	require.Equal(t, spi.DeadlineExceeded, spi.CodeOf(err))

	// A longer timeout applies to the running client; a codec change is
	// reported, not applied.
	src := strings.Replace(fmt.Sprintf(reloadStack, "v1", "5s"), "balancer = \"pick\"", "balancer = \"pick\"\n  codec = \"raw\"", 1)
	writeHCL(t, dir, "kite.hcl", src)
	rep, err := st.ReloadReport(path)
	require.NoError(t, err)
	assert.Equal(t, []string{`client "echo": timeouts 50ms → 5s`}, rep.Applied)
	assert.Equal(t, []string{`client "echo": codec changed`}, rep.NeedRestart)
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{Sleep: "300ms"}, &resp))
}

func TestHandleSIGHUP(t *testing.T) {
	// Catch SIGHUP here too, so a signal sent before HandleSIGHUP has
	// installed its handler cannot end the test process.
	guard := make(chan os.Signal, 16)
	signalNotify(guard, syscall.SIGHUP)
	defer signalStop(guard)

	dir := t.TempDir()
	path := writeHCL(t, dir, "kite.hcl", fmt.Sprintf(reloadStack, "v1", "50ms"))
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	serving(t, st, "v1", &echo{name: "one", version: "v1"})
	c, err := st.Client("echo")
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); stack.HandleSIGHUP(ctx, st, path) }()
	defer func() { cancel(); <-done }()

	writeHCL(t, dir, "kite.hcl", fmt.Sprintf(reloadStack, "v1", "5s"))
	require.Eventually(t, func() bool {
		_ = syscall.Kill(os.Getpid(), syscall.SIGHUP)
		var resp EchoResp
		return c.Call(context.Background(), "Echo.Echo", &EchoReq{Sleep: "100ms"}, &resp) == nil
	}, 10*time.Second, 10*time.Millisecond)
}

func TestCloseClosesWhatItBuilt(t *testing.T) {
	dir := t.TempDir()
	path := writeHCL(t, dir, "kite.hcl", localStack)
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	_, err = st.Server("echo")
	require.NoError(t, err)
	c, err := st.Client("echo")
	require.NoError(t, err)
	require.NoError(t, st.Close())
	require.NoError(t, st.Close(), "idempotent")
	var resp EchoResp
	err = c.Call(context.Background(), "Echo.Echo", &EchoReq{}, &resp)
	assert.Equal(t, spi.Unavailable, spi.CodeOf(err))
	_, err = st.Client("echo")
	assert.Error(t, err)
}

// buildPlugin builds a plugin main (a directory relative to the module
// root) into dir and returns its path and sha256.
func buildPlugin(t *testing.T, dir, pkg string) (string, string) {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, "./"+pkg)
	cmd.Dir = "../.."
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build %s:\n%s", pkg, b)
	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	sum := sha256.Sum256(raw)
	return out, hex.EncodeToString(sum[:])
}

func TestExternalRegistryPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin binary")
	}
	dir := t.TempDir()
	t0 := time.Now()
	bin, sum := buildPlugin(t, dir, "plugins/registry-local/cmd/kite-registry-local")
	t.Logf("build %v", time.Since(t0))
	path := writeHCL(t, dir, "kite.hcl", fmt.Sprintf(`
plugin "registry" "local" {
  path   = %q
  sha256 = %q
}
`, bin, sum)+localStack)
	t0 = time.Now()
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	t.Logf("load %v", time.Since(t0))

	find := func() *stack.PluginInfo {
		for _, p := range st.Plugins() {
			if p.Kind == spi.KindRegistry && p.Name == "local" {
				return &p
			}
		}
		return nil
	}
	ext := find()
	require.NotNil(t, ext, "a declared plugin is listed before it starts")
	assert.Zero(t, ext.Pid, "nothing built uses it yet: not started")
	assert.Equal(t, bin, ext.Source)

	in, stop := serving(t, st, "echo", &echo{name: "through-plugin"})
	ext = find() // the server built its registry: the plugin runs now
	require.NotNil(t, ext)
	assert.Equal(t, bin, ext.Source)
	assert.Equal(t, sum, ext.SHA256)
	assert.Equal(t, "1.0.0", ext.Version)
	assert.NotZero(t, ext.Pid)

	c, err := st.Client("echo")
	require.NoError(t, err)
	var resp EchoResp
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "hi"}, &resp))
	assert.Equal(t, "through-plugin", resp.Server)
	assert.Equal(t, []string{in.Addr}, addrs(c.Instances()))
	t0 = time.Now()
	require.NoError(t, stop())
	t.Logf("stop %v", time.Since(t0))
	t0 = time.Now()
	require.NoError(t, st.Close())
	t.Logf("close %v", time.Since(t0))
	assert.Error(t, syscall.Kill(ext.Pid, 0), "plugin process %d ended with Close", ext.Pid)

	// The plugin's schema is checked once it has started: errors point at
	// the attribute.
	path = writeHCL(t, dir, "bad.hcl", fmt.Sprintf(`
plugin "registry" "local" {
  path   = %q
  sha256 = %q
}
registry "local" "main" {
  dri = "/tmp"
}
`, bin, sum))
	_, err = stack.Check(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.Error(t, err)
	assert.Contains(t, err.Error(), path+":7:9: unsupported attribute \"dri\"")
	assert.Contains(t, err.Error(), "valid attributes: dir, poll_interval, ttl")
	// Loaded for serving, the same error comes at the first build.
	st, err = stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	_, err = st.Registry("main")
	require.Error(t, err)
	assert.Contains(t, err.Error(), path+":7:9: unsupported attribute \"dri\"")
}

func addrs(ins []spi.Instance) []string {
	out := make([]string, 0, len(ins))
	for _, in := range ins {
		out = append(out, in.Addr)
	}
	return out
}

func TestRetrySettingsReachTheClient(t *testing.T) {
	dir := t.TempDir()
	spath := writeHCL(t, dir, "server.hcl", `
server "echo" {
  listen   = "127.0.0.1:0"
  registry = "none"
}
`)
	cat := testCatalog(t)
	sst, err := stack.Load(spath, stack.WithCatalog(cat), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer sst.Close()
	svc := &echo{name: "s"}
	in, _ := serving(t, sst, "echo", svc)

	cpath := writeHCL(t, dir, "client.hcl", fmt.Sprintf(`
client "echo" {
  target = [%q]
  retry {
    max_attempts = 3
    backoff      = "1ms..2ms"
    budget       = 0.5
    codes        = ["Unavailable"]
  }
  method "Echo.Flaky" {
    idempotent = true
  }
}
client "noretry" {
  service = "echo"
  target  = [%q]
  retry {
    budget = 0
  }
  method "Echo.Flaky" {
    idempotent = true
  }
}
`, in.Addr, in.Addr))
	cst, err := stack.Load(cpath, stack.WithCatalog(cat), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer cst.Close()
	c, err := cst.Client("echo")
	require.NoError(t, err)
	var resp EchoResp
	for range 4 {
		// Every other attempt fails; the idempotent method is retried.
		require.NoError(t, c.Call(context.Background(), "Echo.Flaky", &EchoReq{Text: "x"}, &resp))
	}
	nr, err := cst.Client("noretry")
	require.NoError(t, err)
	failures := 0
	for range 4 {
		if err := nr.Call(context.Background(), "Echo.Flaky", &EchoReq{Text: "x"}, &resp); err != nil {
			require.Equal(t, spi.Unavailable, spi.CodeOf(err))
			failures++
		}
	}
	assert.Equal(t, 2, failures, "budget = 0 turns retries off")
}
