package hosts

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/internal/netns"
	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/spi"
)

// port is where every host serves.
const port = 7000

// host is a lab host running a Kite server process.
type host struct {
	*netns.Host
	addr string
	proc *netns.Proc
}

// startHosts adds n hosts h1..hn to the lab and starts a server process
// on each (registered in etcd when etcd is not empty).
func startHosts(t *testing.T, lab *netns.Lab, n int, etcd string) []*host {
	t.Helper()
	hs := make([]*host, n)
	for i := range hs {
		h := lab.AddHost(t, fmt.Sprintf("h%d", i+1))
		hs[i] = &host{Host: h, addr: h.Addr(port)}
	}
	// Started together: each is the test binary starting up.
	for _, h := range hs {
		h.proc = h.StartSelf(t, 5*time.Second, hostEnv+"="+h.addr, hostNameEnv+"="+h.Name, hostEtcdEnv+"="+etcd)
	}
	for _, h := range hs {
		l, ok := h.proc.FirstLine(30 * time.Second)
		require.True(t, ok, "server on %s did not start within 30s", h.Name)
		require.Equal(t, "ready", strings.TrimSpace(l), "server on %s did not start", h.Name)
	}
	return hs
}

func addrs(hs []*host) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.addr
	}
	return out
}

// startEtcd runs a one-member etcd in a host of its own and returns its
// client endpoint, once it answers.
func startEtcd(t *testing.T, lab *netns.Lab) string {
	t.Helper()
	bin := testkit.Tool(t, "etcd", "Debian etcd-server; scripts/ensure-netns.sh installs it")
	h := lab.AddHost(t, "etcd")
	url := "http://" + h.Addr(2379)
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = logf.Close() })
	h.Start(t, 5*time.Second, logf, bin,
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", url, "--advertise-client-urls", url,
		"--listen-peer-urls", "http://127.0.0.1:2380",
		"--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "default=http://127.0.0.1:2380")
	reg, err := etcdRegistry(h.Addr(2379))
	require.NoError(t, err)
	defer reg.Close()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := reg.Resolve(ctx, service)
		cancel()
		if err == nil {
			break
		}
		if time.Since(start) > 20*time.Second {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("etcd in %s did not answer within 20s: %v\n%s", h.Name, err, b)
		}
		time.Sleep(50 * time.Millisecond) // etcd starting: a poll, no signal to wait on
	}
	t.Logf("etcd on %s ready after %s", h.Addr(2379), time.Since(start).Round(time.Millisecond))
	return h.Addr(2379)
}

func testLogger() hclog.Logger {
	if os.Getenv("KITE_CLUSTER_LOG") != "" {
		return hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Debug})
	}
	return hclog.NewNullLogger()
}

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

func call(ctx context.Context, c *core.Client, method string, seq, sleepMs int) (*Resp, error) {
	var resp Resp
	if err := c.Call(ctx, method, &Req{Seq: seq, SleepMs: sleepMs}, &resp); err != nil {
		return nil, err
	}
	if resp.Seq != seq {
		return nil, fmt.Errorf("answer to call %d came back as %d", seq, resp.Seq)
	}
	return &resp, nil
}

// hostStats asks one host for its counters over a client of its own.
func hostStats(t *testing.T, addr string) Stats {
	t.Helper()
	c := newClient(t, core.ClientOptions{Targets: []string{addr}})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var s Stats
	require.NoError(t, c.Call(ctx, "Echo.Stats", &Empty{}, &s), "stats of %s", addr)
	return s
}

// waitFor polls cond every 5 ms until it holds and returns how long that
// took; after bound the test fails.
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

// hit is one successful call: when it returned and who answered.
type hit struct {
	at     time.Time
	server string
}

// load keeps workers placing calls until finish, and accounts for every
// call: the code it ended with, its latency, who answered, and whether it
// returned within its deadline plus grace (a call that does not is
// lost).
type load struct {
	deadline, grace time.Duration
	stop            chan struct{}
	wg              sync.WaitGroup
	inflight        atomic.Int64

	mu       sync.Mutex
	codes    map[spi.Code]int
	samples  map[spi.Code]string
	late     int
	total    int
	lat      []time.Duration
	hits     []hit
	lastSeen map[string]time.Time
}

// startLoad starts workers calling method in a loop, each call with its
// own deadline. After an error a worker pauses 2 ms.
func startLoad(t *testing.T, c *core.Client, method string, workers int, deadline time.Duration) *load {
	l := &load{
		deadline: deadline, grace: 500 * time.Millisecond, stop: make(chan struct{}),
		codes: map[spi.Code]int{}, samples: map[spi.Code]string{}, lastSeen: map[string]time.Time{},
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
				r, err := call(ctx, c, method, int(seq.Add(1)), 0)
				took := time.Since(start)
				l.inflight.Add(-1)
				cancel()
				l.record(r, err, took)
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
	t.Cleanup(l.halt)
	return l
}

func (l *load) record(r *Resp, err error, took time.Duration) {
	code := spi.CodeOf(err)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	l.codes[code]++
	l.lat = append(l.lat, took)
	if err != nil {
		if _, ok := l.samples[code]; !ok {
			l.samples[code] = err.Error()
		}
	} else {
		l.hits = append(l.hits, hit{at: now, server: r.Server})
		l.lastSeen[r.Server] = now
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

// ok is the number of successful calls so far.
func (l *load) ok() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.codes[spi.OK]
}

// servers returns the servers that answered since t0.
func (l *load) serversSince(t0 time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for s, at := range l.lastSeen {
		if at.After(t0) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// firstHit returns the first success answered by server after t0.
func (l *load) firstHit(server string, t0 time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.hits {
		if h.server == server && h.at.After(t0) {
			return h.at, true
		}
	}
	return time.Time{}, false
}

// hitsSince returns a copy of the successes after t0.
func (l *load) hitsSince(t0 time.Time) []hit {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.hits), func(i int) bool { return l.hits[i].at.After(t0) })
	return slices.Clone(l.hits[i:])
}

// loadResult is a finished load's account.
type loadResult struct {
	Total, OK, Failed, Lost int
	Codes                   map[spi.Code]int
	Samples                 map[spi.Code]string
	P50, P99, P999, Max     time.Duration
}

func (r loadResult) String() string {
	var errs []string
	for c, n := range r.Codes {
		if c != spi.OK {
			errs = append(errs, fmt.Sprintf("%s=%d", c, n))
		}
	}
	sort.Strings(errs)
	out := fmt.Sprintf("%d calls, %d ok, %d failed %v, %d lost; latency p50 %s p99 %s p99.9 %s max %s",
		r.Total, r.OK, r.Failed, errs, r.Lost, r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond),
		r.P999.Round(time.Millisecond), r.Max.Round(time.Millisecond))
	for c, msg := range r.Samples {
		out += fmt.Sprintf("; first %s: %s", c, msg)
	}
	return out
}

// finish stops the workers and waits for their calls; a call that does
// not return within its deadline plus grace is lost (and fails the test
// through the Lost count the caller asserts).
func (l *load) finish(t *testing.T) loadResult {
	t.Helper()
	l.halt()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	stuck := 0
	timer := time.NewTimer(l.deadline + l.grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		stuck = int(l.inflight.Load())
		t.Errorf("%d calls still running %s after the load stopped (deadline %s)", stuck, l.deadline+l.grace, l.deadline)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := loadResult{Total: l.total, OK: l.codes[spi.OK], Lost: l.late + stuck,
		Codes: maps.Clone(l.codes), Samples: maps.Clone(l.samples)}
	r.Failed = r.Total - r.OK
	lat := slices.Clone(l.lat)
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	r.P50, r.P99, r.P999 = q(0.50), q(0.99), q(0.999)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
	}
	return r
}

func codeOf(err error) (spi.Code, string) {
	var e *spi.Error
	if errors.As(err, &e) {
		return e.Code, e.Error()
	}
	return spi.CodeOf(err), fmt.Sprint(err)
}

// soakDuration is KITE_CLUSTER_SOAK_DURATION (make cluster-soak sets
// it): how long the scenarios repeat their rounds. 0 (unset): one round.
func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("KITE_CLUSTER_SOAK_DURATION")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		t.Fatalf("KITE_CLUSTER_SOAK_DURATION=%q: want a Go duration such as 5m", v)
	}
	return d
}

// rounds runs round as subtests: once, or under a soak until share of
// the soak duration has passed (each scenario gets a third, so that the
// package's three scenarios together take the duration).
func rounds(t *testing.T, round func(t *testing.T)) int {
	budget := soakDuration(t) / 3
	start := time.Now()
	n := 0
	for {
		n++
		if !t.Run(fmt.Sprintf("round%d", n), round) {
			return n
		}
		if time.Since(start) >= budget {
			return n
		}
	}
}

// summary accumulates a scenario's figures over its rounds and prints
// them as one line that make cluster-soak collects ("SUMMARY ...").
type summary struct {
	scenario                                 string
	rounds, calls, failed, lost, failovers   int
	detect, recover, firstTraffic, fullShare []time.Duration
	extra                                    []string
}

func (s *summary) add(r loadResult) {
	s.calls += r.Total
	s.failed += r.Failed
	s.lost += r.Lost
}

func durs(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("median %s max %s", s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

func (s *summary) print(t *testing.T) {
	line := fmt.Sprintf("SUMMARY %s: rounds=%d calls=%d failed=%d lost=%d failovers=%d detection=[%s] recovery=[%s]",
		s.scenario, s.rounds, s.calls, s.failed, s.lost, s.failovers, durs(s.detect), durs(s.recover))
	if len(s.firstTraffic) > 0 {
		line += fmt.Sprintf(" first_traffic=[%s] full_share=[%s]", durs(s.firstTraffic), durs(s.fullShare))
	}
	if len(s.extra) > 0 {
		line += " " + strings.Join(s.extra, " ")
	}
	t.Log(line)
	fmt.Println(line) // for make cluster-soak's summary, also without -v
}
