package faults

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/spi"
)

// EchoReq, EchoResp and Tick are the messages of the test service.
type EchoReq struct {
	Seq int `json:"seq"`
}

type EchoResp struct {
	Seq    int    `json:"seq"`
	Server string `json:"server"`
}

type Tick struct {
	N      int    `json:"n"`
	Server string `json:"server"`
}

// echo answers with the name of the server it runs in.
type echo struct{ name string }

func (e *echo) Echo(_ context.Context, r *EchoReq) (*EchoResp, error) {
	return &EchoResp{Seq: r.Seq, Server: e.name}, nil
}

// Ticks streams a tick every 5 ms until the stream ends.
func (e *echo) Ticks(ctx context.Context, st *core.Stream) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := st.Send(&Tick{N: n, Server: e.name}); err != nil {
			return err
		}
	}
}

func testLogger() hclog.Logger {
	if os.Getenv("KITE_FAULTS_LOG") != "" {
		return hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Debug})
	}
	return hclog.NewNullLogger()
}

// startServer serves the echo service (and extra services) in process on
// a loopback port; it is closed when the test ends.
func startServer(t *testing.T, name string, opts core.ServerOptions, extra map[string]any) (*core.Server, string) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	srv, err := core.NewServer(opts)
	require.NoError(t, err)
	require.NoError(t, srv.Register("Echo", &echo{name: name}))
	for svc, impl := range extra {
		require.NoError(t, srv.Register(svc, impl))
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return srv, ln.Addr().String()
}

// newClient builds a client closed when the test ends.
func newClient(t *testing.T, opts core.ClientOptions) *core.Client {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	c, err := core.NewClient(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// freeAddr returns a loopback address nobody listens on (for a server
// process that must come back on the same address).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func echoCall(ctx context.Context, c *core.Client, seq int) (*EchoResp, error) {
	var resp EchoResp
	if err := c.Call(ctx, "Echo.Echo", &EchoReq{Seq: seq}, &resp); err != nil {
		return nil, err
	}
	if resp.Seq != seq {
		return nil, fmt.Errorf("answer to call %d came back as %d", seq, resp.Seq)
	}
	return &resp, nil
}

// waitFor polls cond every 5 ms until it holds, failing the test after
// bound; it returns how long it took.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			t.Fatalf("%s: not within %s", what, bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// load keeps workers placing calls until finish, and accounts for every
// call: the code it returned with, and whether it returned at all within
// its deadline plus grace (a call that does not is lost).
type load struct {
	deadline, grace time.Duration
	stop            chan struct{}
	wg              sync.WaitGroup
	inflight        atomic.Int64

	mu      sync.Mutex
	codes   map[spi.Code]int
	samples map[spi.Code]string
	late    int
	total   int
	lastOK  time.Time
}

// startLoad starts workers calling call in a loop, each call with its own
// deadline. After an error a worker pauses 2 ms, so that a server that is
// down is not spun against.
func startLoad(t *testing.T, workers int, deadline time.Duration, call func(ctx context.Context, seq int) error) *load {
	l := &load{
		deadline: deadline, grace: time.Second, stop: make(chan struct{}),
		codes: make(map[spi.Code]int), samples: make(map[spi.Code]string),
	}
	var seq atomic.Int64
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			pause := time.NewTimer(0)
			defer pause.Stop()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				l.inflight.Add(1)
				start := time.Now()
				err := call(ctx, int(seq.Add(1)))
				took := time.Since(start)
				l.inflight.Add(-1)
				cancel()
				l.record(err, took)
				if err != nil {
					pause.Reset(2 * time.Millisecond)
					select {
					case <-pause.C:
					case <-l.stop:
						return
					}
				}
			}
		}()
	}
	t.Cleanup(func() { l.halt() })
	return l
}

func (l *load) record(err error, took time.Duration) {
	code := spi.CodeOf(err)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	l.codes[code]++
	if err != nil {
		if _, ok := l.samples[code]; !ok {
			l.samples[code] = err.Error()
		}
	} else {
		l.lastOK = time.Now()
	}
	if took > l.deadline+l.grace {
		l.late++
	}
}

func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
}

// loadReport is what a load saw.
type loadReport struct {
	Total int
	Codes map[spi.Code]int
	// Samples holds one error message per code.
	Samples map[spi.Code]string
	// Lost counts calls that returned later than deadline + grace, or not
	// at all.
	Lost int
}

func (r loadReport) String() string {
	var parts []string
	for c, n := range r.Codes {
		parts = append(parts, fmt.Sprintf("%s=%d", c, n))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d calls (%s), %d lost", r.Total, strings.Join(parts, " "), r.Lost)
}

// errorsOtherThan returns the codes seen beyond allowed (OK is always
// allowed), with a sample message each.
func (r loadReport) errorsOtherThan(allowed ...spi.Code) []string {
	var out []string
	for c, n := range r.Codes {
		if c == spi.OK {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == c
		}
		if !ok {
			out = append(out, fmt.Sprintf("%s ×%d: %s", c, n, r.Samples[c]))
		}
	}
	return out
}

// snapshot reports without stopping the load.
func (l *load) snapshot() loadReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := loadReport{Total: l.total, Codes: make(map[spi.Code]int), Samples: make(map[spi.Code]string), Lost: l.late}
	for c, n := range l.codes {
		r.Codes[c] = n
	}
	for c, s := range l.samples {
		r.Samples[c] = s
	}
	return r
}

// finish stops the load and waits for every call in flight; calls that
// have not returned by deadline + grace are lost and fail the test.
func (l *load) finish(t *testing.T) loadReport {
	t.Helper()
	l.halt()
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(l.deadline + l.grace):
		t.Fatalf("%d calls lost: not returned %s after the load stopped (deadline %s)", l.inflight.Load(), l.deadline+l.grace, l.deadline)
	}
	r := l.snapshot()
	t.Logf("load: %s", r)
	return r
}

// codeOf returns the code and message of err's *spi.Error.
func codeOf(err error) (spi.Code, string) {
	var e *spi.Error
	if errors.As(err, &e) {
		return e.Code, e.Error()
	}
	return spi.CodeOf(err), fmt.Sprint(err)
}

// builds holds binaries built for this run, removed by cleanupBuilds.
var builds struct {
	sync.Mutex
	dir  string
	bins map[string]string
}

// buildMain builds the main package in dir (relative to the module root)
// once per run and returns the binary's path.
func buildMain(t *testing.T, dir string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if p, ok := builds.bins[dir]; ok {
		return p
	}
	if builds.dir == "" {
		d, err := os.MkdirTemp("", "kite-faults-bin")
		require.NoError(t, err)
		builds.dir = d
		builds.bins = make(map[string]string)
	}
	out := filepath.Join(builds.dir, filepath.Base(dir))
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", out, "./"+dir)
	cmd.Dir = "../.."
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./%s: %s", dir, b)
	builds.bins[dir] = out
	return out
}

func cleanupBuilds() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
	}
}
