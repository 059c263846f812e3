package ops

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/internal/testkit"
)

const signalStack = `
registry "local" "main" {
  dir           = "{{DIR}}/registry"
  poll_interval = "10ms"
}

server "v1" {
  listen           = "127.0.0.1:0"
  registry         = "main"
  service_name     = "echo"
  version          = "v1"
  shutdown_timeout = "5s"
}

server "v2" {
  listen           = "127.0.0.1:0"
  registry         = "main"
  service_name     = "echo"
  version          = "v2"
  shutdown_timeout = "5s"
}

client "echo" {
  registry = "main"
  balancer = "{{BALANCER}}"
  timeout  = "2s"
  retry {
    max_attempts = 3
    backoff      = "1ms..20ms"
  }
  method "Echo.Echo" { idempotent = true }
}
`

// proc is a role process of this test binary.
type proc struct {
	name   string
	cmd    *exec.Cmd
	lines  chan string
	stderr *testkit.SyncBuffer
	exited chan struct{}
	err    error
}

func startRole(t *testing.T, role, block, config string, env ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role, envConfig+"="+config, envBlock+"="+block)
	cmd.Env = append(cmd.Env, env...)
	p := &proc{name: block, cmd: cmd, lines: make(chan string, 4096), stderr: &testkit.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill() // by pid: only the process this test started
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", block, p.stderr.String())
		}
	})
	return p
}

// next returns the next stdout line with prefix, skipping others.
func (p *proc) next(t *testing.T, prefix string, d time.Duration) string {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s exited before printing %q: %v\nstderr:\n%s", p.name, prefix, p.err, p.stderr.String())
			}
			if rest, found := strings.CutPrefix(l, prefix); found {
				return strings.TrimSpace(rest)
			}
		case <-timeout:
			t.Fatalf("%s printed no %q line within %s\nstderr:\n%s", p.name, prefix, d, p.stderr.String())
		}
	}
}

// window reads client windows until cond holds for one with at least
// min calls; it fails on any failed call.
func (p *proc) windowUntil(t *testing.T, what string, d time.Duration, cond func(w window, n int) bool) window {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var w window
		require.NoError(t, json.Unmarshal([]byte(p.next(t, "WINDOW ", d)), &w))
		require.Zero(t, w.Fail, "failed calls in a window while waiting for %s", what)
		n := 0
		for _, v := range w.By {
			n += v
		}
		if n >= 20 && cond(w, n) {
			return w
		}
	}
	t.Fatalf("no client window showed %s within %s", what, d)
	return window{}
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, syscall.Kill(p.cmd.Process.Pid, sig))
}

// waitExit waits for the process to exit and returns how long it took.
func (p *proc) waitExit(t *testing.T, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-p.exited:
	case <-time.After(bound):
		t.Fatalf("%s did not exit within %s", p.name, bound)
	}
	took := time.Since(start)
	require.NoError(t, p.err, "%s exit status; stderr:\n%s", p.name, p.stderr.String())
	assert.Equal(t, 0, p.cmd.ProcessState.ExitCode())
	return took
}

func share(w window, name string, n int) float64 { return float64(w.By[name]) / float64(n) }

// TestSIGHUPSwapsBalancerAndSIGTERMDrains runs two server processes and a
// client process under load on one kite.hcl. Rewriting the client's
// balancer from round_robin to consistent_hash and sending SIGHUP turns
// an even split into all calls on one server; SIGTERM on that server
// then deregisters it, drains and exits 0 within its bound while the
// client moves to the other; the client sees no failed call throughout.
func TestSIGHUPSwapsBalancerAndSIGTERMDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	conf := func(bal string) string { return hcl(signalStack, "{{DIR}}", dir, "{{BALANCER}}", bal) }
	path := writeFile(t, dir, "kite.hcl", conf("round_robin"))

	servers := map[string]*proc{}
	for _, name := range []string{"v1", "v2"} {
		servers[name] = startRole(t, "server", name, path)
	}
	for name, p := range servers {
		t.Logf("server %s at %s", name, p.next(t, "READY ", 30*time.Second))
	}
	client := startRole(t, "client", "echo", path, envKey+"=user-42")
	client.next(t, "READY", 30*time.Second)

	// round_robin: both servers share the load evenly.
	w := client.windowUntil(t, "an even split", 20*time.Second, func(w window, n int) bool {
		return share(w, "v1", n) > 0.3 && share(w, "v2", n) > 0.3
	})
	t.Logf("round_robin window: %v", w.By)

	// Rewrite the balancer and SIGHUP the client under load.
	tmp := writeFile(t, dir, "kite.hcl.new", conf("consistent_hash"))
	require.NoError(t, os.Rename(tmp, path))
	hup := time.Now()
	client.signal(t, syscall.SIGHUP)
	var hot string
	w = client.windowUntil(t, "every call on one server", 10*time.Second, func(w window, n int) bool {
		for name := range servers {
			if w.By[name] == n {
				hot = name
				return true
			}
		}
		return false
	})
	t.Logf("consistent_hash after SIGHUP (%s): %v", time.Since(hup).Round(time.Millisecond), w.By)
	// It stays that way: the key maps to one instance.
	for range 3 {
		w = client.windowUntil(t, "the key staying on "+hot, 5*time.Second, func(w window, n int) bool { return true })
		assert.Len(t, w.By, 1, "consistent_hash keeps the key on one server: %v", w.By)
	}

	// SIGTERM the server taking all calls: it deregisters, drains and
	// exits 0 within its shutdown bound; the client moves to the other.
	cold := "v1"
	if hot == "v1" {
		cold = "v2"
	}
	servers[hot].signal(t, syscall.SIGTERM)
	took := servers[hot].waitExit(t, 8*time.Second)
	t.Logf("server %s exited 0 %s after SIGTERM", hot, took.Round(time.Millisecond))
	assert.Less(t, took, 5*time.Second, "exit within shutdown_timeout")
	w = client.windowUntil(t, "calls moving to "+cold, 10*time.Second, func(w window, n int) bool { return w.By[cold] == n })
	t.Logf("after SIGTERM of %s: %v", hot, w.By)

	// Stop the client: it reports its totals.
	client.signal(t, syscall.SIGTERM)
	var tot total
	require.NoError(t, json.Unmarshal([]byte(client.next(t, "DONE ", 10*time.Second)), &tot))
	client.waitExit(t, 10*time.Second)
	assert.Zero(t, tot.Fail, "failed calls: %v", tot.Errors)
	assert.Greater(t, tot.OK, int64(100))
	t.Logf("client: %d calls, %d failed", tot.OK, tot.Fail)

	servers[cold].signal(t, syscall.SIGTERM)
	took = servers[cold].waitExit(t, 8*time.Second)
	t.Logf("server %s exited 0 %s after SIGTERM", cold, took.Round(time.Millisecond))
}
