package polyglot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

// restartBound: a SIGKILLed Python plugin is running again within this
// (supervisor backoff from 100 ms, a Python start with grpcio imports and
// an mTLS handshake on a loaded 2-core machine).
const restartBound = 15 * time.Second

// waitFor polls cond (another process's state, which sends no signal
// this test could wait on) until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// copyScript copies an example plugin into a temp dir (so the test may
// tamper with it) and declares the copy; the SDK is found through
// PYTHONPATH.
func copyScript(t *testing.T, kind spi.Kind, name, script string) (plugin.Decl, string, []byte) {
	t.Helper()
	src, err := os.ReadFile(example(t, script))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), script)
	if err := os.WriteFile(path, src, 0o644); err != nil {
		t.Fatal(err)
	}
	d := pyDecl(t, kind, name, path)
	d.Env = []string{"PYTHONPATH=" + abs(t, sdkDir), "PYTHONDONTWRITEBYTECODE=1"}
	// The declaration's environment wins over the host's.
	t.Setenv("PYTHONPATH", filepath.Join(t.TempDir(), "nothing-here"))
	return d, path, src
}

// serverCall runs one server-side call with the header through f.
func serverCall(f spi.Filter) (*spi.Call, error) {
	call := &spi.Call{Side: spi.ServerSide, Method: "Greeter.Greet", Peer: "127.0.0.1:1",
		Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
	call.Meta.Set("x-tenant", "blue")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := f.Wrap(func(context.Context, *spi.Call) error { return nil })(ctx, call)
	return call, err
}

// TestPythonFilterKilled SIGKILLs the Python filter plugin: calls fail
// Unavailable naming it (the filter fails closed), the supervisor
// restarts it — refusing while its script does not match the declared
// sha256, as for a Go binary — and configures the handle again.
func TestPythonFilterKilled(t *testing.T) {
	d, script, orig := copyScript(t, spi.KindFilter, "header", "header_filter.py")
	e, proc := load(t, d)
	f := build[spi.Filter](t, e, headerConfig)
	for i := 1; i <= 2; i++ {
		call, err := serverCall(f)
		if err != nil || call.Trailer.Get("x-header-calls") != strconv.Itoa(i) {
			t.Fatalf("call %d before the crash: %v, trailer %v", i, err, call.Trailer)
		}
	}

	// Tamper with the script, then kill the plugin: it cannot come back
	// until the script is what kite.hcl declares again.
	if err := os.WriteFile(script, append(append([]byte(nil), orig...), "\n# tampered\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := proc.Pid()
	if pid == 0 {
		t.Fatal("no pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, err := serverCall(f)
	var se *spi.Error
	if !errors.As(err, &se) || se.Code != spi.Unavailable {
		t.Fatalf("call after kill -9: %v (%T), want Unavailable", err, err)
	}
	want := "plugin filter/header (" + python + " " + script + ") exited: signal: killed; restarting"
	if !strings.Contains(se.Message, want) {
		t.Fatalf("call after kill -9: %q, want it to contain %q", se.Message, want)
	}
	waitFor(t, restartBound, "a restart refused for the tampered script", func() bool {
		_, err := serverCall(f)
		return err != nil && strings.Contains(err.Error(), "refusing to start "+script+": its sha256 is")
	})
	if proc.Running() || proc.Restarts() != 0 {
		t.Fatalf("running %v after %d restarts with a tampered script", proc.Running(), proc.Restarts())
	}

	if err := os.WriteFile(script, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, restartBound, "the plugin restarted", func() bool {
		return proc.Running() && proc.Restarts() == 1 && proc.Pid() != pid
	})
	// The handle was configured again in the new process (whose counts
	// start afresh).
	call, err := serverCall(f)
	if err != nil || call.Trailer.Get("x-header-calls") != "1" {
		t.Fatalf("call after the restart: %v, trailer %v", err, call.Trailer)
	}
	call.Meta.Delete("x-tenant")
	call.Side = spi.ServerSide
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Wrap(func(context.Context, *spi.Call) error { return nil })(ctx, call); spi.CodeOf(err) != spi.Unauthenticated {
		t.Fatalf("after the restart a call without the header got %v, want Unauthenticated", err)
	}
}

// TestPythonRegistryKilled SIGKILLs the Python registry plugin while a
// watch is open: the watch resumes on the restarted plugin.
func TestPythonRegistryKilled(t *testing.T) {
	d, _, _ := copyScript(t, spi.KindRegistry, "jsonfile", "json_registry.py")
	e, proc := load(t, d)
	cfg := `{"file":"` + filepath.Join(t.TempDir(), "r.json") + `","poll_interval":"50ms"}`
	a := build[spi.Registry](t, e, cfg)
	b := build[spi.Registry](t, e, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	one := spi.Instance{Service: "svc", Addr: "127.0.0.1:7001", Weight: 5}
	two := spi.Instance{Service: "svc", Addr: "127.0.0.1:7002", Weight: 7}
	if err := a.Register(ctx, one); err != nil {
		t.Fatal(err)
	}
	w, err := b.Watch(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ins, err := w.Next(ctx); err != nil || len(ins) != 1 {
		t.Fatalf("first snapshot %v, %v", ins, err)
	}
	pid := proc.Pid()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Resolve(ctx, "svc"); spi.CodeOf(err) != spi.Unavailable {
		t.Fatalf("resolve after kill -9: %v, want Unavailable", err)
	}
	waitFor(t, restartBound, "the plugin restarted", func() bool {
		return proc.Running() && proc.Restarts() == 1 && proc.Pid() != pid
	})
	if err := a.Register(ctx, two); err != nil {
		t.Fatal(err)
	}
	for {
		ins, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("watch after the restart: %v", err)
		}
		if len(ins) == 2 {
			break
		}
	}
}
