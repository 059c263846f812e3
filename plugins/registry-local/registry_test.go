package local

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// helperEnv makes the test binary act as a server process that registers
// one instance and waits; see runHelper.
const helperEnv = "KITE_LOCAL_REGISTRY_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	goleak.VerifyTestMain(m)
}

// runHelper registers the instance described by the helper environment,
// prints "ready", and deregisters (Close) when stdin closes.
func runHelper() int {
	var cfg struct {
		Dir, TTL string
		Instance spi.Instance
	}
	if err := json.Unmarshal([]byte(os.Getenv(helperEnv)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	r, err := New(Config{Dir: cfg.Dir, TTL: cfg.TTL})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := r.Register(context.Background(), cfg.Instance); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	if err := r.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type helper struct {
	cmd   *exec.Cmd
	stdin interface{ Close() error }
}

// startHelper runs a separate process that registers in under dir.
func startHelper(t *testing.T, dir, ttl string, in spi.Instance) *helper {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{"Dir": dir, "TTL": ttl, "Instance": in})
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(cfg))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	h := &helper{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "helper process did not start")
	require.Equal(t, "ready\n", line)
	return h
}

func newTest(t *testing.T, c Config) *Registry {
	t.Helper()
	r, err := New(c)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

// nextUntil reads snapshots until one has want instances.
func nextUntil(t *testing.T, ctx context.Context, w spi.Watcher, want int) []spi.Instance {
	t.Helper()
	for {
		got, err := w.Next(ctx)
		require.NoError(t, err, "waiting for %d instances", want)
		if len(got) == want {
			return got
		}
	}
}

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		r, err := New(Config{Dir: dir, PollInterval: "20ms"})
		require.NoError(t, err)
		return r
	})
}

func TestCrashedProcessDisappears(t *testing.T) {
	dir := t.TempDir()
	const ttl = 2 * time.Second
	client := newTest(t, Config{Dir: dir, PollInterval: "20ms"})
	in := spi.Instance{Service: "user", Addr: "127.0.0.1:9000", Weight: 5, Tags: []string{"a"}}
	h := startHelper(t, dir, ttl.String(), in)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := client.Watch(ctx, "user")
	require.NoError(t, err)
	defer w.Stop()
	got := nextUntil(t, ctx, w, 1)
	assert.Equal(t, in, got[0], "another process's registration is visible")

	require.NoError(t, h.cmd.Process.Kill()) // SIGKILL: no chance to deregister
	killed := time.Now()
	_ = h.cmd.Wait() // reaped: the pid no longer exists
	nextUntil(t, ctx, w, 0)
	gone := time.Since(killed)
	t.Logf("instance of a SIGKILLed process gone after %v (ttl %v)", gone, ttl)
	assert.Less(t, gone, ttl, "a dead owner is noticed by its pid, before its ttl runs out")

	// The reader deleted the dead process's file.
	ents, err := filepath.Glob(filepath.Join(dir, "user", "*.json"))
	require.NoError(t, err)
	assert.Empty(t, ents)
}

func TestHungProcessDisappearsAfterTTLAndComesBack(t *testing.T) {
	dir := t.TempDir()
	const ttl = 600 * time.Millisecond
	client := newTest(t, Config{Dir: dir, PollInterval: "20ms"})
	in := spi.Instance{Service: "user", Addr: "127.0.0.1:9001"}
	h := startHelper(t, dir, ttl.String(), in)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := client.Watch(ctx, "user")
	require.NoError(t, err)
	defer w.Stop()
	nextUntil(t, ctx, w, 1)

	// SIGSTOP: the process lives but its heartbeat stops.
	require.NoError(t, h.cmd.Process.Signal(syscall.SIGSTOP))
	stopped := time.Now()
	nextUntil(t, ctx, w, 0)
	hidden := time.Since(stopped)
	t.Logf("instance of a stopped process hidden after %v (ttl %v)", hidden, ttl)
	assert.GreaterOrEqual(t, hidden, ttl/2, "hidden only once the heartbeat is overdue")
	assert.Less(t, hidden, ttl+time.Second)
	// Its file is kept: the owner is alive.
	_, err = os.Stat(filepath.Join(dir, "user", escape(in.Addr)+entrySuffix))
	require.NoError(t, err)

	// SIGCONT: the heartbeat resumes and the instance comes back.
	require.NoError(t, h.cmd.Process.Signal(syscall.SIGCONT))
	nextUntil(t, ctx, w, 1)

	// A graceful exit deregisters at once.
	require.NoError(t, h.stdin.Close())
	require.NoError(t, h.cmd.Wait())
	nextUntil(t, ctx, w, 0)
}

func TestHeartbeatKeepsEntryAlive(t *testing.T) {
	dir := t.TempDir()
	a := newTest(t, Config{Dir: dir, TTL: "300ms"})
	b := newTest(t, Config{Dir: dir, PollInterval: "20ms"})
	ctx := context.Background()
	in := spi.Instance{Service: "user", Addr: "127.0.0.1:9002"}
	require.NoError(t, a.Register(ctx, in))
	w, err := b.Watch(ctx, "user")
	require.NoError(t, err)
	defer w.Stop()
	got, err := w.Next(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1)
	// Five ttls pass; heartbeats keep the entry live, so no change is seen.
	quiet, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	got, err = w.Next(quiet)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "unexpected snapshot %v", got)
}

func TestDeregisterByAnotherIsNotUndoneByHeartbeat(t *testing.T) {
	dir := t.TempDir()
	a := newTest(t, Config{Dir: dir, TTL: "150ms"})
	b := newTest(t, Config{Dir: dir})
	ctx := context.Background()
	in := spi.Instance{Service: "user", Addr: "127.0.0.1:9003"}
	require.NoError(t, a.Register(ctx, in))
	require.NoError(t, b.Deregister(ctx, in))
	// a's heartbeat notices the entry is gone and stops maintaining it.
	require.Eventually(t, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.own) == 0
	}, 5*time.Second, 10*time.Millisecond)
	got, err := b.Resolve(ctx, "user")
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestReRegisterByAnotherTakesOwnership(t *testing.T) {
	dir := t.TempDir()
	a := newTest(t, Config{Dir: dir})
	b := newTest(t, Config{Dir: dir})
	ctx := context.Background()
	in := spi.Instance{Service: "user", Addr: "127.0.0.1:9004", Version: "a"}
	require.NoError(t, a.Register(ctx, in))
	in.Version = "b"
	require.NoError(t, b.Register(ctx, in))
	// Closing a must not withdraw b's registration of the same address.
	require.NoError(t, a.Close())
	got, err := b.Resolve(ctx, "user")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, got)
}

func TestForeignNamespaceEntriesUseHeartbeatOnly(t *testing.T) {
	dir := t.TempDir()
	r := newTest(t, Config{Dir: dir})
	ctx := context.Background()
	// An entry written from another pid namespace with a pid that does
	// not exist here: liveness must come from its heartbeat alone.
	write := func(addr string, age time.Duration) string {
		rec := record{
			Instance:  spi.Instance{Service: "user", Addr: addr},
			PID:       1 << 22, // above pid_max: never a live pid here
			PIDNS:     "pid:[1]",
			Owner:     "foreign",
			TTLMillis: 1000,
		}
		require.NoError(t, r.write(rec))
		path := filepath.Join(dir, "user", escape(addr)+entrySuffix)
		old := time.Now().Add(-age)
		require.NoError(t, os.Chtimes(path, old, old))
		return path
	}
	fresh := write("127.0.0.1:1", 0)
	stalePath := write("127.0.0.1:2", 5*time.Second)
	ancient := write("127.0.0.1:3", 2*time.Minute)

	got, err := r.Resolve(ctx, "user")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{{Service: "user", Addr: "127.0.0.1:1"}}, got)
	assert.FileExists(t, fresh)
	assert.FileExists(t, stalePath, "a stale entry is hidden, not deleted: its owner may resume")
	assert.NoFileExists(t, ancient, "an entry silent for gcAge is deleted")

	// The same pid judged from this namespace is dead and collected.
	rec := record{Instance: spi.Instance{Service: "user", Addr: "127.0.0.1:4"}, PID: 1 << 22, PIDNS: r.pidns, Owner: "x", TTLMillis: 1000}
	require.NoError(t, r.write(rec))
	got, err = r.Resolve(ctx, "user")
	require.NoError(t, err)
	assert.Len(t, got, 1)
	assert.NoFileExists(t, filepath.Join(dir, "user", escape("127.0.0.1:4")+entrySuffix))
}

func TestNamesStayInsideDir(t *testing.T) {
	dir := t.TempDir()
	r := newTest(t, Config{Dir: filepath.Join(dir, "reg")})
	ctx := context.Background()
	for _, svc := range []string{"..", "../escape", "a/b", ".hidden", "x%2F"} {
		in := spi.Instance{Service: svc, Addr: "unix:///run/" + svc + ".sock"}
		require.NoError(t, r.Register(ctx, in), svc)
		got, err := r.Resolve(ctx, svc)
		require.NoError(t, err)
		assert.Equal(t, []spi.Instance{in}, got, svc)
	}
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "nothing was written beside the registry directory")
	assert.NotEqual(t, escape("a/b"), escape("a%2Fb"))
	assert.Equal(t, "%2E.", escape(".."), "no name is . or .. or hidden")

	_, err = r.Resolve(ctx, strings.Repeat("s", 300))
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err))
}

func TestDefaultDir(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	assert.Equal(t, filepath.Join(xdg, "kite"), DefaultDir())
	r := newTest(t, Config{})
	assert.Equal(t, filepath.Join(xdg, "kite"), r.Dir())

	tmp := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("TMPDIR", tmp)
	want := filepath.Join(tmp, fmt.Sprintf("kite-registry-%d", os.Getuid()))
	assert.Equal(t, want, DefaultDir())

	// A default directory others can write to is refused.
	require.NoError(t, os.Mkdir(want, 0o700))
	require.NoError(t, os.Chmod(want, 0o777))
	_, err := New(Config{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "writable by other users")
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	v, err := spi.Default.Build(spi.KindRegistry, Name, spi.Config(`{"dir":"`+dir+`","ttl":"3s","poll_interval":"50ms"}`))
	require.NoError(t, err)
	r := v.(*Registry)
	defer r.Close()
	assert.Equal(t, 3*time.Second, r.ttl)
	assert.Equal(t, 50*time.Millisecond, r.poll)

	for _, tc := range []struct{ cfg, want string }{
		{`{"ttl":"soon"}`, "ttl"},
		{`{"ttl":"1ms"}`, "below the minimum"},
		{`{"poll_interval":"1ns"}`, "below the minimum"},
		{`{"directory":"/tmp"}`, "unknown field"},
	} {
		_, err := spi.Default.Build(spi.KindRegistry, Name, spi.Config(tc.cfg))
		if assert.Error(t, err, tc.cfg) {
			assert.Contains(t, err.Error(), tc.want, tc.cfg)
		}
	}
}

// A service's last instance leaving takes its directory (and lock file)
// with it, so a clean shutdown leaves nothing behind; registering again
// recreates it, also while many register and leave at once.
func TestLastInstanceLeavesNothingBehind(t *testing.T) {
	dir := t.TempDir()
	a := newTest(t, Config{Dir: dir})
	b := newTest(t, Config{Dir: dir})
	ctx := context.Background()
	in := spi.Instance{Service: "user", Addr: "127.0.0.1:9010"}
	require.NoError(t, a.Register(ctx, in))
	require.NoError(t, a.Deregister(ctx, in))
	_, err := os.Stat(filepath.Join(dir, "user"))
	assert.ErrorIs(t, err, os.ErrNotExist, "the service directory outlives its last instance")

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := a
			if i%2 == 1 {
				r = b
			}
			in := spi.Instance{Service: "user", Addr: fmt.Sprintf("127.0.0.1:%d", 9100+i)}
			for range 25 {
				assert.NoError(t, r.Register(ctx, in))
				got, err := r.Resolve(ctx, "user")
				assert.NoError(t, err)
				assert.Contains(t, got, in)
				assert.NoError(t, r.Deregister(ctx, in))
			}
		}()
	}
	wg.Wait()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, ents)
}
