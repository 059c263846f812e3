package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin/internal/testplugins"
)

func TestRegistryThroughBridge(t *testing.T) {
	v, _ := load(t, spi.KindRegistry, `{"prefix":"p/"}`)
	reg := v.(spi.Registry)
	ctx := context.Background()

	a := spi.Instance{Service: "user", Addr: "127.0.0.1:1", Weight: 3, Zone: "z1", Tags: []string{"a"}, Metadata: map[string]string{"k": "v"}}
	b := spi.Instance{Service: "user", Addr: "127.0.0.1:2"}
	w, err := reg.Watch(ctx, "user")
	require.NoError(t, err)
	defer w.Stop()
	snap, err := w.Next(ctx)
	require.NoError(t, err)
	assert.Empty(t, snap)

	require.NoError(t, reg.Register(ctx, a))
	require.NoError(t, reg.Register(ctx, b))
	got, err := reg.Resolve(ctx, "user")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{a, b}, got)

	// Snapshots are full; a slow reader may skip intermediate ones.
	eventually(t, "watch sees both instances", func() bool {
		nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		s, err := w.Next(nctx)
		return err == nil && len(s) == 2
	})
	require.NoError(t, reg.Deregister(ctx, a))
	s, err := w.Next(ctx)
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{b}, s)

	// The implementation's error keeps its code and message.
	_, err = reg.Resolve(ctx, "missing")
	assert.ErrorIs(t, err, spi.ErrNotFound)
	assert.Contains(t, err.Error(), `service "missing" is not known`)
	_, err = reg.Watch(ctx, "missing")
	assert.ErrorIs(t, err, spi.ErrNotFound)
	err = reg.Register(ctx, spi.Instance{})
	assert.ErrorIs(t, err, spi.ErrInvalidArgument)

	// Watch's context bounds the opening only; Stop cancels the stream
	// and ends a blocked Next.
	wctx, cancel := context.WithCancel(ctx)
	w2, err := reg.Watch(wctx, "user")
	require.NoError(t, err)
	cancel()
	_, err = w2.Next(ctx)
	require.NoError(t, err, "the watch outlives the context it was opened with")
	blocked := make(chan error, 1)
	go func() {
		_, err := w2.Next(ctx)
		blocked <- err
	}()
	w2.Stop()
	assert.ErrorIs(t, <-blocked, spi.ErrCanceled)
	_, err = w2.Next(ctx)
	assert.ErrorIs(t, err, spi.ErrCanceled)
	w2.Stop() // twice is fine
	_, err = reg.Watch(wctx, "user")
	assert.ErrorIs(t, err, context.Canceled)

	// A bounded Next returns the context's error.
	nctx, ncancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err = w.Next(nctx)
	ncancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	require.NoError(t, reg.Close())
}

func TestRegistryCrashRestart(t *testing.T) {
	gate := make(chan struct{})
	restartHook = func() { <-gate }
	defer func() { restartHook = nil }()

	v, p := load(t, spi.KindRegistry, `{}`)
	reg := v.(spi.Registry)
	ctx := context.Background()
	in := spi.Instance{Service: "svc", Addr: "10.0.0.1:80"}
	require.NoError(t, reg.Register(ctx, in))
	w, err := reg.Watch(ctx, "svc")
	require.NoError(t, err)
	defer w.Stop()
	s, err := w.Next(ctx)
	require.NoError(t, err)
	require.Len(t, s, 1)

	pid := p.Pid()
	require.NotZero(t, pid)
	sock := p.socket()
	require.NotEmpty(t, sock, "the plugin listens on a Unix socket")
	_, err = os.Lstat(sock)
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))

	// While the supervisor waits at the gate, calls fail clearly.
	_, err = reg.Resolve(ctx, "svc")
	require.Error(t, err)
	var se *spi.Error
	require.True(t, errors.As(err, &se), "%T %v", err, err)
	assert.Equal(t, spi.Unavailable, se.Code)
	assert.Contains(t, se.Message, "plugin registry/test-registry ("+testPlugin+") exited: signal: killed; restarting")
	err = reg.Register(ctx, spi.Instance{Service: "svc", Addr: "10.0.0.2:80"})
	assert.ErrorIs(t, err, spi.ErrUnavailable)
	assert.False(t, p.Running())

	close(gate)
	eventually(t, "plugin restarted", p.Running)
	assert.Equal(t, 1, p.Restarts())
	assert.NotEqual(t, pid, p.Pid())
	// The killed process could not remove its socket; the host did.
	_, err = os.Lstat(sock)
	assert.ErrorIs(t, err, os.ErrNotExist, "the killed plugin's socket %s is left behind", sock)

	// The registration made before the crash was replayed; the failed one
	// was not.
	got, err := reg.Resolve(ctx, "svc")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, got)

	// The watch was reopened and delivers snapshots again.
	nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err = w.Next(nctx)
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, s)
	b := spi.Instance{Service: "svc", Addr: "10.0.0.3:80"}
	require.NoError(t, reg.Register(ctx, b))
	eventually(t, "watch sees the new instance", func() bool {
		s, err := w.Next(nctx)
		return err == nil && len(s) == 2
	})
}

func TestFilterThroughBridge(t *testing.T) {
	// On the filter channel (the default), on gRPC as the host chooses,
	// and on gRPC because the plugin offers no channel (as an older SDK).
	t.Run("channel", func(t *testing.T) {
		testFilterThroughBridge(t, nil, true, false)
	})
	t.Run("grpc", func(t *testing.T) {
		testFilterThroughBridge(t, func(d *Decl) { d.NoFilterChannel = true }, false, false)
	})
	t.Run("plugin-without-channel", func(t *testing.T) {
		testFilterThroughBridge(t, func(d *Decl) { d.Env = []string{"KITE_PLUGIN_NO_FILTER_CHANNEL=1"} }, false, true)
	})
}

// testFilterThroughBridge: channel is whether the host uses the filter
// channel, noChannel whether the plugin offers none.
func testFilterThroughBridge(t *testing.T, edit func(*Decl), channel, noChannel bool) {
	v, p := loadWith(t, spi.KindFilter, `{"deny":["Admin.Drop"],"stamp":"kite"}`, edit)
	f := v.(spi.Filter)
	require.Equal(t, channel, p.FilterChannel(), "filter channel in use")

	var mu sync.Mutex
	var reached []string
	var backendErr error
	invoke := spi.Chain(func(ctx context.Context, call *spi.Call) error {
		mu.Lock()
		defer mu.Unlock()
		reached = append(reached, call.Method+" stamp="+call.Meta.Get("x-stamp")+" auth="+call.Meta.Get("authorization"))
		call.Trailer.Set("x-backend", "yes")
		return backendErr
	}, f)
	newCall := func(method string) *spi.Call {
		m := &spi.Metadata{}
		m.Set("authorization", "token")
		return &spi.Call{Side: spi.ServerSide, Method: method, Peer: "127.0.0.1:5", Meta: m, Trailer: &spi.Metadata{}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	call := newCall("User.Get")
	require.NoError(t, invoke(ctx, call))
	assert.Equal(t, []string{"User.Get stamp=kite auth=token"}, reached)
	assert.Equal(t, "kite", call.Meta.Get("x-stamp"), "metadata changes reach the host")
	assert.Equal(t, "OK", call.Trailer.Get("x-result"))
	assert.Equal(t, "yes", call.Trailer.Get("x-backend"))

	// Short-circuit: next is not reached, the code crosses the bridge.
	err := invoke(ctx, newCall("Admin.Drop"))
	assert.ErrorIs(t, err, spi.ErrPermissionDenied)
	assert.Contains(t, err.Error(), "method Admin.Drop is denied")
	assert.Len(t, reached, 1)

	// After sees the result and replaces it.
	backendErr = spi.Errorf(spi.Internal, "db down")
	call = newCall("User.Get")
	err = invoke(ctx, call)
	assert.ErrorIs(t, err, spi.ErrUnavailable)
	assert.Contains(t, err.Error(), "guard: backend failed: db down")
	assert.Equal(t, "Internal", call.Trailer.Get("x-result"))
	backendErr = spi.Errorf(spi.NotFound, "no user")
	assert.ErrorIs(t, invoke(ctx, newCall("User.Get")), spi.ErrNotFound)
	backendErr = nil

	// Crash: calls fail closed with a clear error, then recover.
	gate := make(chan struct{})
	restartHook = func() { <-gate }
	defer func() { restartHook = nil }()
	var chanDir string
	if g, err := p.current(); err == nil {
		chanDir = g.chanDir
	}
	require.Equal(t, !noChannel, chanDir != "", "channel socket directory known")
	require.NoError(t, syscall.Kill(p.Pid(), syscall.SIGKILL))
	n := len(reached)
	err = invoke(ctx, newCall("User.Get"))
	assert.ErrorIs(t, err, spi.ErrUnavailable)
	assert.Contains(t, err.Error(), "plugin filter/test-filter ("+testPlugin+") exited: signal: killed; restarting")
	assert.Len(t, reached, n, "a filter that cannot run lets nothing through")
	close(gate)
	eventually(t, "filter plugin back", func() bool { return invoke(ctx, newCall("User.Get")) == nil })
	assert.ErrorIs(t, invoke(ctx, newCall("Admin.Drop")), spi.ErrPermissionDenied, "configuration re-applied")
	assert.Equal(t, channel, p.FilterChannel(), "filter channel in use after the restart")
	if chanDir != "" {
		_, err := os.Stat(chanDir)
		assert.True(t, os.IsNotExist(err), "the killed plugin's socket directory %s is removed: %v", chanDir, err)
	}
}

func TestBalancerThroughBridge(t *testing.T) {
	v, _ := load(t, spi.KindBalancer, `{}`)
	bal := v.(spi.Balancer)
	assert.Equal(t, "wrr", bal.Name())
	ins := []spi.Instance{
		{Service: "s", Addr: "a:1", Weight: 300},
		{Service: "s", Addr: "b:1", Weight: 100},
		{Service: "s", Addr: "c:1", Weight: 100},
	}
	ctx := context.Background()
	local := testplugins.WRR{}.Build(ins)
	remote := bal.Build(ins)
	// The bridged picker reproduces the compiled-in sequence exactly.
	for i := range 50 {
		want, err := local.Pick(ctx, spi.PickInfo{})
		require.NoError(t, err)
		got, err := remote.Pick(ctx, spi.PickInfo{})
		require.NoError(t, err)
		require.Equal(t, want.Instance.Addr, got.Instance.Addr, "pick %d", i)
	}
	// Exclude is honoured when another instance exists.
	for range 10 {
		r, err := remote.Pick(ctx, spi.PickInfo{Exclude: []string{"a:1"}})
		require.NoError(t, err)
		assert.NotEqual(t, "a:1", r.Instance.Addr)
	}
	_, err := bal.Build(nil).Pick(ctx, spi.PickInfo{})
	assert.ErrorIs(t, err, spi.ErrNoInstance)
}

func TestCodecThroughBridge(t *testing.T) {
	v, _ := load(t, spi.KindCodec, `{}`)
	c := v.(spi.Codec)
	assert.Equal(t, "tjson", c.Name())
	assert.Equal(t, uint8(200), c.ID())
	type user struct {
		ID   int64             `json:"id"`
		Name string            `json:"name"`
		Tags []string          `json:"tags"`
		M    map[string]string `json:"m"`
	}
	in := user{ID: 1 << 53, Name: "ann", Tags: []string{"x"}, M: map[string]string{"a": "b"}}
	b, err := c.Marshal([]byte("prefix:"), in)
	require.NoError(t, err)
	want, _ := testplugins.JSONCodec{}.Marshal([]byte("prefix:"), in)
	assert.JSONEq(t, string(want[7:]), string(b[7:]))
	assert.Equal(t, "prefix:", string(b[:7]))
	var out user
	require.NoError(t, c.Unmarshal(b[7:], &out))
	assert.Equal(t, in, out)
	err = c.Unmarshal([]byte("{not json"), &out)
	require.Error(t, err)
	assert.NotEqual(t, spi.Unavailable, spi.CodeOf(err), "an implementation error, not a bridge failure: %v", err)
}

func TestWrongChecksumRefused(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "started")
	script := filepath.Join(dir, "kite-registry-wrapped")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\ntouch "+marker+"\nexec "+testPlugin+" \"$@\"\n"), 0o755))
	good := fileSum(script)
	bad := strings.Repeat("ab", 32)
	ctx := context.Background()

	_, _, err := Load(ctx, Decl{Kind: spi.KindRegistry, Name: "w", Path: script, SHA256: bad, Args: []string{"registry"}}, testLogger())
	require.Error(t, err)
	assert.Contains(t, err.Error(), script)
	assert.Contains(t, err.Error(), good)
	assert.Contains(t, err.Error(), bad)
	assert.NoFileExists(t, marker, "a refused plugin must never start")

	_, _, err = Load(ctx, Decl{Kind: spi.KindRegistry, Name: "w", Path: script, Args: []string{"registry"}}, testLogger())
	assert.ErrorContains(t, err, "sha256 is required")

	// The right sum starts it (through the wrapper, with Args).
	e, p, err := Load(ctx, Decl{Kind: spi.KindRegistry, Name: "w", Path: script, SHA256: strings.ToUpper(good), Args: []string{"registry"}}, testLogger())
	require.NoError(t, err)
	defer p.Close()
	assert.FileExists(t, marker)
	assert.Equal(t, spi.KindRegistry, e.Kind)

	// A kind mismatch is reported.
	_, _, err = Load(ctx, Decl{Kind: spi.KindFilter, Name: "w", Path: testPlugin, SHA256: fileSum(testPlugin), Args: []string{"registry"}}, testLogger())
	assert.ErrorContains(t, err, "it serves a registry, not a filter")
}

func TestCloseKillsPlugin(t *testing.T) {
	_, p := load(t, spi.KindRegistry, `{}`)
	pid := p.Pid()
	require.NoError(t, p.Close())
	assert.True(t, processGone(pid))
	_, err := p.current()
	assert.ErrorContains(t, err, "is closed")
}

// TestNoOrphanAfterHostKilled runs a host in a subprocess, SIGKILLs it and
// checks that its plugin died with it.
func TestNoOrphanAfterHostKilled(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KITE_PLUGIN_TEST_HOST="+testPlugin)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	var pid int
	var sock string
	_, err = fmt.Sscanf(line, "pid=%d sock=%s", &pid, &sock)
	require.NoError(t, err, "host said %q", line)
	// The plugin dies with its host (SIGKILL on parent death) and cannot
	// remove its socket, nor can the dead host: remove it here, so the
	// test leaves nothing in the temp dir.
	defer removeSocket(sock)
	require.False(t, processGone(pid), "plugin should be running")

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	eventually(t, "plugin process "+strconv.Itoa(pid)+" gone after its host was killed", func() bool { return processGone(pid) })
}

// processGone reports whether pid no longer runs (absent or a zombie).
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// Format: pid (comm) state …
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func TestExampleDenylistPlugin(t *testing.T) {
	e := loadBinary(t, "examples/custom-plugin/cmd/kite-filter-denylist", spi.KindFilter, "denylist")
	assert.Equal(t, "1.0.0", e.Version)
	assert.Len(t, e.Schema, 3)
	f := build[spi.Filter](t, e, `{"methods":["Admin.*"],"callers":["batch-job"]}`)
	reached := 0
	invoke := spi.Chain(func(context.Context, *spi.Call) error { reached++; return nil }, f)
	ctx := context.Background()
	call := func(method, caller string) *spi.Call {
		m := &spi.Metadata{}
		m.Set(spi.MetaCaller, caller)
		return &spi.Call{Side: spi.ServerSide, Method: method, Meta: m, Trailer: &spi.Metadata{}}
	}
	require.NoError(t, invoke(ctx, call("User.Get", "web")))
	err := invoke(ctx, call("Admin.Drop", "web"))
	assert.ErrorIs(t, err, spi.ErrPermissionDenied)
	assert.Contains(t, err.Error(), "Admin.Drop: denied by policy")
	assert.ErrorIs(t, invoke(ctx, call("User.Get", "batch-job")), spi.ErrPermissionDenied)
	assert.Equal(t, 1, reached)
	_, err = e.New(spi.Config(`{"methods":["bad"]}`))
	assert.ErrorIs(t, err, spi.ErrInvalidArgument)
}
