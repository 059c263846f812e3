package stack_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"

	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/compress-snappy"
	_ "github.com/kiterpc/kite/plugins/lb-roundrobin"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
	_ "github.com/kiterpc/kite/plugins/registry-local"
)

// spawnLoop is spi/plugin's thread that starts plugin processes; it lives
// as long as the process, by design (see spi/plugin/host.go).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/kiterpc/kite/spi/plugin.spawnLoop"))
}

// EchoReq and EchoResp are the test service's messages.
type EchoReq struct {
	Text  string `json:"text"`
	Sleep string `json:"sleep,omitempty"`
}

type EchoResp struct {
	Text    string `json:"text"`
	Server  string `json:"server"`
	Version string `json:"version"`
}

// echo answers with its name and version so tests see which instance
// served a call.
type echo struct {
	name, version string
	calls         atomic.Int64
	flaky         atomic.Int64
}

func (e *echo) Echo(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	e.calls.Add(1)
	if r.Sleep != "" {
		d, err := time.ParseDuration(r.Sleep)
		if err != nil {
			return nil, spi.Errorf(spi.InvalidArgument, "sleep: %v", err)
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &EchoResp{Text: r.Text, Server: e.name, Version: e.version}, nil
}

// Flaky fails with Unavailable every other call.
func (e *echo) Flaky(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	if e.flaky.Add(1)%2 == 1 {
		return nil, spi.Errorf(spi.Unavailable, "flaky")
	}
	return &EchoResp{Text: r.Text, Server: e.name, Version: e.version}, nil
}

func (e *echo) Fail(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	return nil, spi.Errorf(spi.NotFound, "no %s", r.Text)
}

var quiet = hclog.NewNullLogger()

// testCatalog holds everything linked into the test binary plus the test
// implementations below; spi.Default stays untouched.
func testCatalog(t *testing.T) *spi.Catalog {
	t.Helper()
	cat := &spi.Catalog{}
	for _, e := range spi.Default.Entries() {
		require.NoError(t, cat.Add(e))
	}
	require.NoError(t, cat.Add(spi.Entry{
		Kind: spi.KindBalancer, Name: "version", Version: "0.0.1",
		Schema: spi.Schema{{Name: "version", Type: spi.TypeString, Required: true}},
		New: func(cfg spi.Config) (any, error) {
			var c struct {
				Version string `json:"version"`
			}
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
			return versionBalancer{version: c.Version}, nil
		},
	}))
	require.NoError(t, cat.Add(spi.Entry{
		Kind: spi.KindRegistry, Name: "mem", Version: "0.0.1",
		New: func(spi.Config) (any, error) { return newMemRegistry(), nil },
	}))
	require.NoError(t, cat.Add(spi.Entry{
		Kind: spi.KindFilter, Name: "broken", Version: "0.0.1",
		Schema: spi.Schema{{Name: "why", Type: spi.TypeString}},
		New: func(cfg spi.Config) (any, error) {
			return nil, errors.New("refusing to build: this filter is broken on purpose")
		},
	}))
	return cat
}

// versionBalancer round-robins over the instances of one version.
type versionBalancer struct{ version string }

func (b versionBalancer) Name() string { return "version" }
func (b versionBalancer) Build(ins []spi.Instance) spi.Picker {
	var keep []spi.Instance
	for _, in := range ins {
		if in.Version == b.version {
			keep = append(keep, in)
		}
	}
	return &versionPicker{ins: keep}
}

type versionPicker struct {
	ins []spi.Instance
	n   atomic.Uint64
}

func (p *versionPicker) Pick(context.Context, spi.PickInfo) (spi.PickResult, error) {
	if len(p.ins) == 0 {
		return spi.PickResult{}, spi.ErrNoInstance
	}
	return spi.PickResult{Instance: p.ins[p.n.Add(1)%uint64(len(p.ins))]}, nil
}

// memRegistry is an in-memory registry that records, for each
// deregistration, whether the instance still accepted connections.
type memRegistry struct {
	mu      sync.Mutex
	ins     map[string]map[string]spi.Instance
	changed chan struct{}
	events  []string
	closed  bool
}

func newMemRegistry() *memRegistry {
	return &memRegistry{ins: map[string]map[string]spi.Instance{}, changed: make(chan struct{})}
}

func (r *memRegistry) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *memRegistry) Register(_ context.Context, in spi.Instance) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ins[in.Service] == nil {
		r.ins[in.Service] = map[string]spi.Instance{}
	}
	r.ins[in.Service][in.Addr] = in
	r.events = append(r.events, "register "+in.Addr)
	r.notify()
	return nil
}

func (r *memRegistry) Deregister(ctx context.Context, in spi.Instance) error {
	state := "listener closed"
	var d net.Dialer
	if c, err := d.DialContext(ctx, "tcp", in.Addr); err == nil {
		state = "listener open"
		_ = c.Close()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.ins[in.Service], in.Addr)
	r.events = append(r.events, "deregister "+in.Addr+" ("+state+")")
	r.notify()
	return nil
}

func (r *memRegistry) Resolve(_ context.Context, svc string) ([]spi.Instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshot(svc), nil
}

func (r *memRegistry) snapshot(svc string) []spi.Instance {
	out := make([]spi.Instance, 0, len(r.ins[svc]))
	for _, in := range r.ins[svc] {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}

func (r *memRegistry) Watch(_ context.Context, svc string) (spi.Watcher, error) {
	return &memWatch{r: r, svc: svc, stop: make(chan struct{})}, nil
}

func (r *memRegistry) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return nil
}

func (r *memRegistry) Events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

type memWatch struct {
	r     *memRegistry
	svc   string
	first bool
	seen  chan struct{}
	stop  chan struct{}
	once  sync.Once
}

func (w *memWatch) Next(ctx context.Context) ([]spi.Instance, error) {
	w.r.mu.Lock()
	if !w.first {
		w.first = true
		w.seen = w.r.changed
		s := w.r.snapshot(w.svc)
		w.r.mu.Unlock()
		return s, nil
	}
	ch := w.seen
	w.r.mu.Unlock()
	select {
	case <-ch:
	case <-w.stop:
		return nil, errors.New("watch stopped")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	w.seen = w.r.changed
	return w.r.snapshot(w.svc), nil
}

func (w *memWatch) Stop() { w.once.Do(func() { close(w.stop) }) }

// writeHCL writes a kite.hcl into dir, replacing {{DIR}} with dir.
func writeHCL(t *testing.T, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(strings.ReplaceAll(src, "{{DIR}}", dir)), 0o644))
	return p
}

// serving runs st.Serve for a server block in the background and
// returns its instance once registered, and a stop function that ends
// Serve and returns its error.
func serving(t *testing.T, st *stack.Stack, name string, svc *echo) (spi.Instance, func() error) {
	t.Helper()
	return servingWith(t, st, name, func(s *core.Server) error { return s.Register("Echo", svc) })
}

// servingWith is serving with the services register puts on the server.
func servingWith(t *testing.T, st *stack.Stack, name string, register func(*core.Server) error) (spi.Instance, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan spi.Instance, 1)
	done := make(chan error, 1)
	go func() {
		done <- st.ServeNotify(ctx, name, register, func(in spi.Instance) { ready <- in })
	}()
	select {
	case in := <-ready:
		var once sync.Once
		var err error
		stop := func() error {
			once.Do(func() {
				cancel()
				err = <-done
			})
			return err
		}
		t.Cleanup(func() { _ = stop() })
		return in, stop
	case err := <-done:
		cancel()
		t.Fatalf("serve %s: %v", name, err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatalf("serve %s: not ready after 10s", name)
	}
	return spi.Instance{}, nil
}

// callLoad keeps callers calling Echo.Echo on a client until stop, so a
// test can change things under load and check that no call failed.
type callLoad struct {
	calls, failed atomic.Int64
	last          atomic.Value // what of() said of the latest answer
	firstErr      atomic.Value
	cancel        context.CancelFunc
	wg            sync.WaitGroup
}

// startLoad starts n callers; of picks what to remember of each answer
// (its server, its version…).
func startLoad(c *core.Client, n int, of func(*EchoResp) string) *callLoad {
	l := &callLoad{}
	l.last.Store("")
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				var resp EchoResp
				err := c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "x"}, &resp)
				l.calls.Add(1)
				if err != nil {
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				l.last.Store(of(&resp))
			}
		}()
	}
	return l
}

// moved waits until calls placed from now on answer with want.
func (l *callLoad) moved(t *testing.T, want string, msg ...any) {
	t.Helper()
	mark := l.calls.Load() + 400
	require.Eventually(t, func() bool { return l.calls.Load() > mark && l.last.Load() == want }, 5*time.Second, time.Millisecond, msg...)
}

// stop ends the callers and fails the test if any call failed.
func (l *callLoad) stop(t *testing.T) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	t.Logf("%d calls, %d failed", l.calls.Load(), l.failed.Load())
	require.Zero(t, l.failed.Load(), "first error: %v", l.firstErr.Load())
}
