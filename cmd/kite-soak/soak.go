package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/internal/faultproxy"
	"github.com/kiterpc/kite/spi"
)

// Config shapes a soak run.
type Config struct {
	// Duration of the load, faults included.
	Duration time.Duration
	// Servers behind their own fault proxy each.
	Servers int
	// Workers place calls concurrently, each one call at a time.
	Workers int
	// Rate caps calls per second across workers; 0 = as fast as they go.
	Rate int
	// Deadline of every call; a call that has not returned Grace after
	// its deadline is lost.
	Deadline time.Duration
	Grace    time.Duration
	// StreamShare is the fraction of calls that are streams.
	StreamShare float64
	// FaultEvery is the period of the fault schedule.
	FaultEvery time.Duration
	// SampleEvery is the period of resource samples (default 5 s);
	// ProgressEvery that of progress lines (default 30 s).
	SampleEvery   time.Duration
	ProgressEvery time.Duration
	// Mark is the reference point for flatness, "minute 2" (default: 2
	// minutes, or a fifth of Duration when that is shorter).
	Mark time.Duration
	// Window is the span averaged for the mark and for the end: the mark
	// is the mean of the samples in (Mark-Window, Mark], the end that of
	// the last Window (default: 1 minute, or a tenth of Duration).
	Window time.Duration
	// MaxEjectionPercent is the client breakers' cap (0: the default).
	MaxEjectionPercent int
	// Seed drives the fault schedule's choices.
	Seed uint64
	// HostileEvery is the period of the hostile-client rounds (see
	// hostile.go); default 10 s, negative disables them.
	HostileEvery time.Duration
	// Out receives progress lines; nil = none.
	Out io.Writer
	// Logger receives client and server logs; nil = none.
	Logger hclog.Logger
}

func (c *Config) defaults() {
	if c.Duration <= 0 {
		c.Duration = 10 * time.Minute
	}
	if c.Servers <= 0 {
		c.Servers = 3
	}
	if c.Workers <= 0 {
		c.Workers = 64
	}
	if c.Deadline <= 0 {
		c.Deadline = time.Second
	}
	if c.Grace <= 0 {
		c.Grace = 2 * time.Second
	}
	if c.StreamShare < 0 || c.StreamShare > 1 {
		c.StreamShare = 0.1
	}
	if c.FaultEvery <= 0 {
		c.FaultEvery = 5 * time.Second
	}
	if c.SampleEvery <= 0 {
		c.SampleEvery = 5 * time.Second
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 30 * time.Second
	}
	if c.Mark <= 0 {
		c.Mark = min(2*time.Minute, c.Duration/5)
	}
	if c.Window <= 0 {
		c.Window = min(time.Minute, c.Duration/10)
	}
	if c.HostileEvery == 0 {
		c.HostileEvery = 10 * time.Second
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	// Progress and fault lines come from two goroutines.
	c.Out = &lockedWriter{w: c.Out}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
}

// Sample is the process's resource use at one moment.
type Sample struct {
	At         time.Duration `json:"at"`
	Goroutines int           `json:"goroutines"`
	RSS        int64         `json:"rss_bytes"`
	HeapInuse  uint64        `json:"heap_inuse_bytes"`
	// ByOrigin counts goroutines by the function that started them, so a
	// drift can be traced to its source.
	ByOrigin map[string]int `json:"goroutines_by_origin,omitempty"`
}

// Report is the outcome of a run.
type Report struct {
	Config  string            `json:"config"`
	Elapsed time.Duration     `json:"elapsed"`
	Calls   uint64            `json:"calls"`
	Unary   uint64            `json:"unary"`
	Streams uint64            `json:"streams"`
	OK      uint64            `json:"ok"`
	Errors  map[string]uint64 `json:"errors"`
	// ErrorSamples holds the first message seen for each error code.
	ErrorSamples map[string]string `json:"error_samples"`
	Lost         uint64            `json:"lost"`
	LostDetails  []string          `json:"lost_details,omitempty"`
	Wrong        uint64            `json:"wrong_answers"`
	Retries      uint64            `json:"retries"`
	Ejections    uint64            `json:"ejections"`
	Faults       map[string]int    `json:"faults"`
	Samples      []Sample          `json:"samples"`
	Start        Sample            `json:"start"`
	// Mark and End average the samples of their window (Config.Window):
	// a gauge that moves with the load (calls in flight, handler
	// goroutines parked for reuse, connections being re-established
	// after a fault) is compared window to window, not moment to moment.
	Mark      Sample `json:"mark"`
	End       Sample `json:"end"`
	MarkCount int    `json:"mark_window_samples"`
	EndCount  int    `json:"end_window_samples"`
	// Drift from Mark to End, as fractions (0.05 = +5%).
	GoroutineDrift float64 `json:"goroutine_drift"`
	RSSDrift       float64 `json:"rss_drift"`
	// PointGoroutineDrift and PointRSSDrift compare the single samples
	// nearest the mark and at the end, for the record.
	PointGoroutineDrift float64 `json:"point_goroutine_drift"`
	PointRSSDrift       float64 `json:"point_rss_drift"`
	// From the mark window on: the range of the samples, and the slope of
	// a least-squares line through them per minute, as a fraction of the
	// mark (a leak shows as a steady positive slope).
	GoroutinesMin  int     `json:"goroutines_min"`
	GoroutinesMax  int     `json:"goroutines_max"`
	RSSMin         int64   `json:"rss_min_bytes"`
	RSSMax         int64   `json:"rss_max_bytes"`
	GoroutineSlope float64 `json:"goroutine_slope_per_min"`
	RSSSlope       float64 `json:"rss_slope_per_min"`
	// CloseBlocked reports that Client.Close did not return within 10 s.
	CloseBlocked bool `json:"client_close_blocked"`
	// Stranded counts goroutines left blocked in a client connection's
	// close after teardown (a known core bug; see docs/RELIABILITY.md).
	Stranded int `json:"stranded_close_goroutines"`
	// AfterTeardown is the goroutine count once everything was closed.
	AfterTeardown int `json:"goroutines_after_teardown"`
	// Hostile is what the hostile-client phase did and saw.
	Hostile HostileReport `json:"hostile"`
}

// Flat reports whether goroutines and RSS stayed within ±10% from the
// mark to the end.
func (r *Report) Flat() bool {
	return abs(r.GoroutineDrift) <= 0.10 && abs(r.RSSDrift) <= 0.10
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// Messages of the soak service.
type Req struct {
	Seq   uint64 `json:"seq"`
	Count int    `json:"count,omitempty"`
}
type Resp struct {
	Seq    uint64 `json:"seq"`
	Server int    `json:"server"`
}

// echo is the soak service.
type echo struct{ id int }

func (e *echo) Echo(_ context.Context, r *Req) (*Resp, error) {
	return &Resp{Seq: r.Seq, Server: e.id}, nil
}

// Count reads one Req and answers with Count messages.
func (e *echo) Count(_ context.Context, st *core.Stream) error {
	var r Req
	if err := st.Recv(&r); err != nil {
		return err
	}
	for i := range r.Count {
		if err := st.Send(&Resp{Seq: r.Seq + uint64(i), Server: e.id}); err != nil {
			return err
		}
	}
	return nil
}

// Sink never reads and ends with its stream: what the hostile phase
// opens and leaves idle, or overruns.
func (e *echo) Sink(ctx context.Context, _ *core.Stream) error {
	<-ctx.Done()
	return nil
}

// backend is one server and the proxy in front of it.
type backend struct {
	id    int
	addr  string // the server's own address, stable across restarts
	proxy *faultproxy.Proxy
	log   hclog.Logger

	mu  sync.Mutex
	srv *core.Server
}

func (b *backend) start() error {
	srv, err := core.NewServer(core.ServerOptions{Logger: b.log, StreamIdleTimeout: hostileIdleTimeout})
	if err != nil {
		return err
	}
	if err := srv.Register("Echo", &echo{id: b.id}); err != nil {
		return err
	}
	addr := b.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	// The port of a server just closed can take a moment to be free.
	var ln net.Listener
	for try := 0; ; try++ {
		ln, err = srv.Listen(context.Background(), addr, nil)
		if err == nil || try == 100 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	b.addr = ln.Addr().String()
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	return nil
}

// stop ends the server: graceful (GOAWAY, drain) or abrupt.
func (b *backend) stop(graceful bool) {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv == nil {
		return
	}
	if graceful {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
	} else {
		_ = srv.Close()
	}
}

// slot is a worker's call in flight, watched for loss.
type slot struct {
	started atomic.Int64 // unix nanos; 0 while idle
	call    atomic.Uint64
	flagged atomic.Uint64 // the call last counted as lost
	kind    atomic.Value  // string
}

type counters struct {
	calls, unary, streams, ok, wrong, lost atomic.Uint64
	codes                                  [32]atomic.Uint64
}

// Run performs a soak run and reports on it.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	rep := &Report{
		Config: fmt.Sprintf("duration=%s servers=%d workers=%d rate=%d deadline=%s grace=%s streams=%.0f%% faults every %s",
			cfg.Duration, cfg.Servers, cfg.Workers, cfg.Rate, cfg.Deadline, cfg.Grace, cfg.StreamShare*100, cfg.FaultEvery),
		Errors:       map[string]uint64{},
		ErrorSamples: map[string]string{},
		Faults:       map[string]int{},
	}
	began := time.Now()
	sample := func() Sample { return takeSample(began) }

	var backends []*backend
	defer func() {
		for _, b := range backends {
			b.stop(false)
			_ = b.proxy.Close()
		}
	}()
	var targets []string
	for i := range cfg.Servers {
		b := &backend{id: i, log: cfg.Logger}
		if err := b.start(); err != nil {
			return nil, err
		}
		p, err := faultproxy.New(b.addr)
		if err != nil {
			b.stop(false)
			return nil, err
		}
		b.proxy = p
		backends = append(backends, b)
		targets = append(targets, p.Addr())
	}
	client, err := core.NewClient(core.ClientOptions{
		Targets:             targets,
		ConnsPerEndpoint:    2,
		HeartbeatInterval:   500 * time.Millisecond,
		HeartbeatTimeout:    500 * time.Millisecond,
		ReconnectBackoffMin: 20 * time.Millisecond,
		ReconnectBackoffMax: time.Second,
		Methods:             map[string]core.MethodOptions{"Echo.Echo": {Idempotent: true}},
		Breaker:             &resilience.BreakerConfig{MaxEjectionPercent: cfg.MaxEjectionPercent},
		Logger:              cfg.Logger,
	})
	if err != nil {
		return nil, err
	}

	var cnt counters
	slots := make([]*slot, cfg.Workers)
	for i := range slots {
		slots[i] = &slot{}
		slots[i].kind.Store("")
	}
	var lostMu sync.Mutex
	noteLost := func(s *slot, now int64) {
		id := s.call.Load()
		start := s.started.Load()
		if start == 0 || s.flagged.Load() == id || time.Duration(now-start) <= cfg.Deadline+cfg.Grace {
			return
		}
		s.flagged.Store(id)
		cnt.lost.Add(1)
		lostMu.Lock()
		if len(rep.LostDetails) < 20 {
			rep.LostDetails = append(rep.LostDetails, fmt.Sprintf("call %d (%s) pending for %s at t=%s",
				id, s.kind.Load(), time.Duration(now-start).Round(time.Millisecond), time.Since(began).Round(time.Second)))
		}
		lostMu.Unlock()
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var workers sync.WaitGroup
	var seq atomic.Uint64
	var sampleMu sync.Mutex
	var perWorker time.Duration
	if cfg.Rate > 0 {
		perWorker = time.Duration(float64(time.Second) * float64(cfg.Workers) / float64(cfg.Rate))
	}
	for w := range cfg.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			s := slots[w]
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(w)))
			// Workers start spread over one period, so that paced calls
			// arrive evenly rather than in bursts of cfg.Workers.
			next := time.Now().Add(perWorker * time.Duration(w) / time.Duration(cfg.Workers))
			for loadCtx.Err() == nil {
				if perWorker > 0 {
					next = next.Add(perWorker)
					if d := time.Until(next); d > 0 {
						t := time.NewTimer(d)
						select {
						case <-t.C:
						case <-loadCtx.Done():
							t.Stop()
							return
						}
					} else if d < -time.Second {
						next = time.Now() // do not burst to catch up after a stall
					}
				}
				id := seq.Add(1)
				stream := rng.Float64() < cfg.StreamShare
				kind := "unary"
				if stream {
					kind = "stream"
				}
				s.kind.Store(kind)
				s.call.Store(id)
				s.started.Store(time.Now().UnixNano())
				cctx, cancel := context.WithTimeout(context.Background(), cfg.Deadline)
				var err error
				if stream {
					err = streamCall(cctx, client, id)
					cnt.streams.Add(1)
				} else {
					err = unaryCall(cctx, client, id)
					cnt.unary.Add(1)
				}
				cancel()
				s.started.Store(0)
				cnt.calls.Add(1)
				switch {
				case err == nil:
					cnt.ok.Add(1)
				case errors.Is(err, errWrongAnswer):
					cnt.wrong.Add(1)
				default:
					code := spi.CodeOf(err)
					if int(code) < len(cnt.codes) {
						cnt.codes[code].Add(1)
					}
					sampleMu.Lock()
					if _, ok := rep.ErrorSamples[code.String()]; !ok {
						rep.ErrorSamples[code.String()] = kind + ": " + err.Error()
					}
					sampleMu.Unlock()
				}
			}
		}()
	}

	// The watchdog: a call pending beyond deadline + grace is lost.
	watchStop := make(chan struct{})
	var watchWG sync.WaitGroup
	watchWG.Add(1)
	go func() {
		defer watchWG.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-watchStop:
				return
			case <-t.C:
			}
			now := time.Now().UnixNano()
			for _, s := range slots {
				noteLost(s, now)
			}
		}
	}()

	// The fault schedule.
	faultCtx, stopFaults := context.WithCancel(ctx)
	var faultWG sync.WaitGroup
	var faultMu sync.Mutex
	faultWG.Add(1)
	go func() {
		defer faultWG.Done()
		runFaults(faultCtx, cfg, backends, func(name string) {
			faultMu.Lock()
			rep.Faults[name]++
			faultMu.Unlock()
		})
	}()
	if cfg.HostileEvery > 0 {
		faultWG.Add(1)
		go func() {
			defer faultWG.Done()
			// The first round once the load has settled.
			sleepCtx(faultCtx, min(5*time.Second, cfg.Duration/10))
			runHostile(faultCtx, cfg.HostileEvery, backends, &rep.Hostile)
		}()
	}

	progress := func(label string, smp Sample) {
		fmt.Fprintf(cfg.Out, "%-8s t=%-6s calls=%d ok=%d errors=%d lost=%d goroutines=%d rss=%.1fMiB heap=%.1fMiB\n",
			label, smp.At.Round(time.Second), cnt.calls.Load(), cnt.ok.Load(),
			cnt.calls.Load()-cnt.ok.Load(), cnt.lost.Load(), smp.Goroutines, mib(smp.RSS), mib(int64(smp.HeapInuse)))
	}

	// Let the load settle before the start sample.
	settle := min(5*time.Second, cfg.Duration/10)
	sleepCtx(ctx, settle)
	rep.Start = sample()
	rep.Samples = append(rep.Samples, rep.Start)
	progress("start", rep.Start)
	end := began.Add(cfg.Duration)
	lastProgress := time.Now()
	tick := time.NewTicker(cfg.SampleEvery)
	for ctx.Err() == nil && time.Now().Before(end) {
		t := time.NewTimer(time.Until(end))
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-tick.C:
			smp := sample()
			rep.Samples = append(rep.Samples, smp)
			if time.Since(lastProgress) >= cfg.ProgressEvery {
				lastProgress = time.Now()
				progress("sample", smp)
			}
		}
		t.Stop()
	}
	tick.Stop()
	last := sample()
	rep.Samples = append(rep.Samples, last)
	progress("end", last)

	// Stop: faults first (every fault reverted), then the load; calls in
	// flight get deadline + grace to return before they count as lost.
	stopFaults()
	faultWG.Wait()
	stopLoad()
	done := make(chan struct{})
	go func() {
		workers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(cfg.Deadline + cfg.Grace + time.Second):
		now := time.Now().UnixNano()
		for _, s := range slots {
			noteLost(s, now)
		}
	}
	close(watchStop)
	watchWG.Wait()

	st := client.Stats()
	rep.Retries, rep.Ejections = st.Retries, st.Ejections
	closed := make(chan struct{})
	go func() {
		_ = client.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		// Reported, not waited for: the run's numbers stand.
		rep.CloseBlocked = true
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		// Workers stuck beyond a client Close: reported as lost above.
	}
	for _, b := range backends {
		b.stop(false)
		_ = b.proxy.Close()
	}
	backends = nil
	rep.AfterTeardown = settledGoroutines(2 * time.Second)
	rep.Stranded = strandedClosers()

	rep.Elapsed = time.Since(began)
	rep.Calls, rep.Unary, rep.Streams = cnt.calls.Load(), cnt.unary.Load(), cnt.streams.Load()
	rep.OK, rep.Wrong, rep.Lost = cnt.ok.Load(), cnt.wrong.Load(), cnt.lost.Load()
	for i := range cnt.codes {
		if n := cnt.codes[i].Load(); n > 0 {
			rep.Errors[spi.Code(i).String()] = n
		}
	}
	rep.judge(cfg.Mark, cfg.Window)
	return rep, nil
}

// judge sets Mark, End and the drifts from the samples.
func (r *Report) judge(mark, window time.Duration) {
	if len(r.Samples) == 0 {
		return
	}
	last := r.Samples[len(r.Samples)-1]
	if last.At < mark {
		mark = r.Samples[0].At // a run cut short: judge from the start
	}
	var markWin, endWin, after []Sample
	point := r.Samples[0]
	for _, s := range r.Samples {
		if s.At > mark-window && s.At <= mark {
			markWin = append(markWin, s)
		}
		if s.At > last.At-window {
			endWin = append(endWin, s)
		}
		if s.At > mark-window {
			after = append(after, s)
		}
		if abs(float64(s.At-mark)) < abs(float64(point.At-mark)) {
			point = s
		}
	}
	if len(markWin) == 0 {
		markWin = []Sample{point}
	}
	r.Mark, r.MarkCount = average(markWin), len(markWin)
	r.End, r.EndCount = average(endWin), len(endWin)
	r.GoroutineDrift = drift(float64(r.Mark.Goroutines), float64(r.End.Goroutines))
	r.RSSDrift = drift(float64(r.Mark.RSS), float64(r.End.RSS))
	r.PointGoroutineDrift = drift(float64(point.Goroutines), float64(last.Goroutines))
	r.PointRSSDrift = drift(float64(point.RSS), float64(last.RSS))
	r.GoroutinesMin, r.GoroutinesMax = after[0].Goroutines, after[0].Goroutines
	r.RSSMin, r.RSSMax = after[0].RSS, after[0].RSS
	xs := make([]float64, len(after))
	gs := make([]float64, len(after))
	rs := make([]float64, len(after))
	for i, s := range after {
		r.GoroutinesMin, r.GoroutinesMax = min(r.GoroutinesMin, s.Goroutines), max(r.GoroutinesMax, s.Goroutines)
		r.RSSMin, r.RSSMax = min(r.RSSMin, s.RSS), max(r.RSSMax, s.RSS)
		xs[i], gs[i], rs[i] = s.At.Minutes(), float64(s.Goroutines), float64(s.RSS)
	}
	if r.Mark.Goroutines > 0 {
		r.GoroutineSlope = slope(xs, gs) / float64(r.Mark.Goroutines)
	}
	if r.Mark.RSS > 0 {
		r.RSSSlope = slope(xs, rs) / float64(r.Mark.RSS)
	}
}

// average is the mean of samples (At: the last one's; ByOrigin: none).
func average(ss []Sample) Sample {
	var g, rss, heap float64
	for _, s := range ss {
		g += float64(s.Goroutines)
		rss += float64(s.RSS)
		heap += float64(s.HeapInuse)
	}
	n := float64(len(ss))
	return Sample{At: ss[len(ss)-1].At, Goroutines: int(g/n + 0.5), RSS: int64(rss / n), HeapInuse: uint64(heap / n)}
}

// slope is the least-squares slope of y over x (0 with fewer than two
// distinct x).
func slope(x, y []float64) float64 {
	n := float64(len(x))
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		sxy += x[i] * y[i]
	}
	den := n*sxx - sx*sx
	if n < 2 || den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

var errWrongAnswer = errors.New("wrong answer")

func unaryCall(ctx context.Context, c *core.Client, id uint64) error {
	var resp Resp
	if err := c.Call(ctx, "Echo.Echo", &Req{Seq: id}, &resp); err != nil {
		return err
	}
	if resp.Seq != id {
		return fmt.Errorf("%w: call %d answered as %d", errWrongAnswer, id, resp.Seq)
	}
	return nil
}

// streamCall opens a stream, asks for 8 messages and reads them to the end.
func streamCall(ctx context.Context, c *core.Client, id uint64) error {
	st, err := c.Stream(ctx, "Echo.Count")
	if err != nil {
		return err
	}
	const n = 8
	if err := st.Send(&Req{Seq: id, Count: n}); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	for i := range n {
		var r Resp
		if err := st.Recv(&r); err != nil {
			return err
		}
		if r.Seq != id+uint64(i) {
			return fmt.Errorf("%w: stream %d message %d is %d", errWrongAnswer, id, i, r.Seq)
		}
	}
	var r Resp
	if err := st.Recv(&r); !errors.Is(err, io.EOF) {
		if err == nil {
			return fmt.Errorf("%w: stream %d sent more than %d messages", errWrongAnswer, id, n)
		}
		return err
	}
	return nil
}

// The faults of the schedule, in rotation, each on the next server.
var faultKinds = []string{"cut", "delay", "black-hole", "restart-crash", "refuse", "corrupt", "restart-graceful"}

// runFaults injects one fault every cfg.FaultEvery until ctx ends, then
// reverts whatever is in force.
func runFaults(ctx context.Context, cfg Config, backends []*backend, count func(string)) {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	t := time.NewTicker(cfg.FaultEvery)
	defer t.Stop()
	// hold is how long a lasting fault stays, well within the period.
	hold := min(cfg.FaultEvery*3/5, 3*time.Second)
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		kind := faultKinds[n%len(faultKinds)]
		b := backends[rng.IntN(len(backends))]
		count(kind)
		fmt.Fprintf(cfg.Out, "fault    %-16s server %d\n", kind, b.id)
		switch kind {
		case "cut":
			b.proxy.CloseConns()
		case "refuse":
			b.proxy.MustSet(faultproxy.Cut())
			sleepCtx(ctx, hold)
			b.proxy.MustSet(faultproxy.Pass())
		case "delay":
			b.proxy.MustSet(faultproxy.Delay(100 * time.Millisecond))
			sleepCtx(ctx, hold)
			b.proxy.MustSet(faultproxy.Pass())
		case "black-hole":
			b.proxy.MustSet(faultproxy.BlackHole())
			sleepCtx(ctx, hold)
			b.proxy.MustSet(faultproxy.Pass())
			// Black-holed connections stay silent until the client's
			// heartbeat ends them; that is the point.
		case "corrupt":
			// The first byte of each connection's next request frame: the
			// server must drop that connection and nothing else. (A flip
			// inside a body would go unnoticed: the protocol leaves
			// integrity to TCP's checksum, or TLS; docs/RELIABILITY.md.)
			for _, c := range b.proxy.Conns() {
				c.MustSet(faultproxy.CorruptAt(faultproxy.Upstream, 0))
			}
		case "restart-crash", "restart-graceful":
			b.stop(kind == "restart-graceful")
			sleepCtx(ctx, hold/2)
			if err := b.start(); err != nil {
				fmt.Fprintf(cfg.Out, "fault    restart of server %d failed: %v\n", b.id, err)
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func drift(from, to float64) float64 {
	if from == 0 {
		return 0
	}
	return (to - from) / from
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// takeSample reads goroutines, RSS and heap five times over 400 ms and
// keeps the medians: a moment's calls in flight should not decide a
// trend.
func takeSample(began time.Time) Sample {
	var gs, rs, hs []int64
	for i := range 5 {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		gs = append(gs, int64(runtime.NumGoroutine()))
		rs = append(rs, rss())
		hs = append(hs, int64(ms.HeapInuse))
	}
	return Sample{At: time.Since(began), Goroutines: int(median(gs)), RSS: median(rs), HeapInuse: uint64(median(hs)), ByOrigin: goroutineOrigins()}
}

// goroutineOrigins counts the live goroutines by the function named in
// their "created by" line ("main" for the main goroutine).
func goroutineOrigins() map[string]int {
	out := map[string]int{}
	for _, g := range strings.Split(allStacks(), "\n\n") {
		origin := "main"
		if i := strings.Index(g, "\ncreated by "); i >= 0 {
			line := g[i+len("\ncreated by "):]
			if j := strings.IndexAny(line, " \n"); j >= 0 {
				line = line[:j]
			}
			// A copy: a substring would keep the whole dump alive in
			// every sample the report holds.
			origin = strings.Clone(line)
		}
		out[origin]++
	}
	return out
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

func median(v []int64) int64 {
	v = slices.Clone(v)
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[len(v)/2]
}

// settledGoroutines waits up to d for the goroutine count to stop
// falling (connections and timers winding down) and returns it.
func settledGoroutines(d time.Duration) int {
	deadline := time.Now().Add(d)
	n := runtime.NumGoroutine()
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}

// rss returns the resident set size from /proc/self/statm (0 elsewhere).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// Format writes the report for people.
func (r *Report) Format(w io.Writer) {
	fmt.Fprintf(w, "kite soak: %s\n", r.Config)
	fmt.Fprintf(w, "elapsed %s\n", r.Elapsed.Round(time.Second))
	fmt.Fprintf(w, "calls made   %d (%d unary, %d streams), %.0f/s\n", r.Calls, r.Unary, r.Streams, float64(r.Calls)/r.Elapsed.Seconds())
	fmt.Fprintf(w, "ok           %d (%.3f%%)\n", r.OK, 100*float64(r.OK)/max(float64(r.Calls), 1))
	codes := make([]string, 0, len(r.Errors))
	for c := range r.Errors {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "error        %-18s %-8d e.g. %s\n", c, r.Errors[c], r.ErrorSamples[c])
	}
	fmt.Fprintf(w, "wrong answer %d\n", r.Wrong)
	fmt.Fprintf(w, "LOST         %d\n", r.Lost)
	for _, d := range r.LostDetails {
		fmt.Fprintf(w, "  lost: %s\n", d)
	}
	fmt.Fprintf(w, "retries %d, ejections %d\n", r.Retries, r.Ejections)
	kinds := make([]string, 0, len(r.Faults))
	for k, n := range r.Faults {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "faults       %s\n", strings.Join(kinds, " "))
	fmt.Fprintf(w, "%-18s %10s %12s %12s\n", "sample", "goroutines", "rss MiB", "heap MiB")
	for _, s := range []struct {
		name string
		s    Sample
	}{{"start", r.Start}, {fmt.Sprintf("mark (avg of %d)", r.MarkCount), r.Mark}, {fmt.Sprintf("end (avg of %d)", r.EndCount), r.End}} {
		fmt.Fprintf(w, "%-18s %10d %12.1f %12.1f   at %s\n", s.name, s.s.Goroutines, mib(s.s.RSS), mib(int64(s.s.HeapInuse)), s.s.At.Round(time.Second))
	}
	fmt.Fprintf(w, "mark→end drift (window averages): goroutines %+.1f%%, rss %+.1f%% (flat within 10%%: %v)\n",
		100*r.GoroutineDrift, 100*r.RSSDrift, r.Flat())
	fmt.Fprintf(w, "single samples nearest mark → last: goroutines %+.1f%%, rss %+.1f%%\n", 100*r.PointGoroutineDrift, 100*r.PointRSSDrift)
	fmt.Fprintf(w, "from the mark window on: goroutines %d..%d, rss %.1f..%.1f MiB; trend %+.2f%%/min goroutines, %+.2f%%/min rss\n",
		r.GoroutinesMin, r.GoroutinesMax, mib(r.RSSMin), mib(r.RSSMax), 100*r.GoroutineSlope, 100*r.RSSSlope)
	h := r.Hostile
	fmt.Fprintf(w, "hostile      %d rounds: idle streams %d opened, %d ended by the idle timeout, %d refused; %d bombs answered %v; %d window overruns told; failures %d\n",
		h.Rounds, h.IdleOpened, h.IdleEnded, h.IdleRefused, h.Bombs, h.BombCodes, h.Overruns, h.Failures)
	for _, d := range h.FailureText {
		fmt.Fprintf(w, "  hostile failure: %s\n", d)
	}
	fmt.Fprintf(w, "goroutines after teardown: %d\n", r.AfterTeardown)
	if r.Stranded > 0 {
		fmt.Fprintf(w, "goroutines stranded in a client connection's close (core bug): %d\n", r.Stranded)
	}
	if r.CloseBlocked {
		fmt.Fprintln(w, "client Close blocked for more than 10s")
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// strandedClosers counts goroutines blocked in a client connection's
// writer close or shutdown once everything has been closed: there should
// be none.
func strandedClosers() int {
	count := 0
	for _, g := range strings.Split(allStacks(), "\n\n") {
		if strings.Contains(g, "core.(*batchWriter).close") || strings.Contains(g, "core.(*clientConn).shutdown") || strings.Contains(g, "core.(*clientConn).close(") {
			count++
		}
	}
	return count
}
