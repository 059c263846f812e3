package loadgen

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/spi"
)

// Config describes a run.
type Config struct {
	// Concurrency is the number of callers, each placing one call at a
	// time. Default 1.
	Concurrency int
	// Duration bounds the run; 0 means until Requests are done (one of
	// the two is required).
	Duration time.Duration
	// Requests, when positive, stops the run after that many calls.
	Requests int64
	// Progress, if set, is called every ProgressEvery (default 500 ms)
	// from a goroutine of its own, and not after Run returns.
	Progress      func(Snapshot)
	ProgressEvery time.Duration
	// Classify names an error's class for Result.Errors; default the
	// spi status code name ("Unavailable", "DeadlineExceeded", …).
	Classify func(error) string
}

// Snapshot is the progress of a run so far.
type Snapshot struct {
	Elapsed time.Duration
	Calls   int64
	Errors  int64
	// QPS is calls per second since the start; RecentQPS since the
	// previous snapshot.
	QPS, RecentQPS float64
}

// Latency holds latency figures of the successful and failed calls alike.
type Latency struct {
	Min, Mean, P50, P90, P99, P999, Max time.Duration
}

// Result is the outcome of a run.
type Result struct {
	Concurrency int
	// Elapsed is from the first call to the return of the last.
	Elapsed time.Duration
	Calls   int64
	OK      int64
	// Errors counts failed calls by class.
	Errors map[string]int64
	// QPS is Calls / Elapsed.
	QPS     float64
	Latency Latency
	// Histogram holds every call's latency, for further analysis.
	Histogram *Histogram
}

// ErrorCount is the number of failed calls.
func (r *Result) ErrorCount() int64 { return r.Calls - r.OK }

// ErrorClasses returns the error classes ordered by count, largest first.
func (r *Result) ErrorClasses() []string {
	out := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if r.Errors[out[i]] != r.Errors[out[j]] {
			return r.Errors[out[i]] > r.Errors[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}

type worker struct {
	h      Histogram
	ok     int64
	errors map[string]int64
}

// Run calls call from cfg.Concurrency goroutines until the duration is
// over, cfg.Requests calls were made or ctx ends, and measures each call.
// call receives ctx; calls still running at the end are awaited, and
// calls that fail because ctx ended are not counted. If ctx ends early,
// the partial result is returned with ctx's error.
func Run(ctx context.Context, cfg Config, call func(ctx context.Context) error) (*Result, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Duration <= 0 && cfg.Requests <= 0 {
		return nil, errors.New("loadgen: need a duration or a number of requests")
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 500 * time.Millisecond
	}
	classify := cfg.Classify
	if classify == nil {
		classify = func(err error) string { return spi.CodeOf(err).String() }
	}
	var (
		calls, failed, claimed atomic.Int64
		wg                     sync.WaitGroup
		workers                = make([]*worker, cfg.Concurrency)
	)
	start := time.Now()
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	more := func() bool {
		if ctx.Err() != nil || (!deadline.IsZero() && !time.Now().Before(deadline)) {
			return false
		}
		return cfg.Requests <= 0 || claimed.Add(1) <= cfg.Requests
	}
	for i := range workers {
		w := &worker{errors: map[string]int64{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for more() {
				t0 := time.Now()
				err := call(ctx)
				d := time.Since(t0)
				if err != nil && ctx.Err() != nil {
					return // interrupted, not a failure of the server
				}
				w.h.Record(d)
				calls.Add(1)
				if err != nil {
					failed.Add(1)
					w.errors[classify(err)]++
				} else {
					w.ok++
				}
			}
		}()
	}

	finished := make(chan struct{})
	var pwg sync.WaitGroup
	if cfg.Progress != nil {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			t := time.NewTicker(cfg.ProgressEvery)
			defer t.Stop()
			prevAt, prevCalls := start, int64(0)
			for {
				select {
				case <-finished:
					return
				case now := <-t.C:
					n := calls.Load()
					s := Snapshot{Elapsed: now.Sub(start), Calls: n, Errors: failed.Load()}
					if e := s.Elapsed.Seconds(); e > 0 {
						s.QPS = float64(n) / e
					}
					if e := now.Sub(prevAt).Seconds(); e > 0 {
						s.RecentQPS = float64(n-prevCalls) / e
					}
					prevAt, prevCalls = now, n
					cfg.Progress(s)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(finished)
	pwg.Wait()

	res := &Result{Concurrency: cfg.Concurrency, Elapsed: elapsed, Errors: map[string]int64{}, Histogram: &Histogram{}}
	for _, w := range workers {
		res.Histogram.Merge(&w.h)
		res.OK += w.ok
		for k, v := range w.errors {
			res.Errors[k] += v
		}
	}
	h := res.Histogram
	res.Calls = int64(h.Count())
	if s := elapsed.Seconds(); s > 0 {
		res.QPS = float64(res.Calls) / s
	}
	res.Latency = Latency{
		Min: h.Min(), Mean: h.Mean(), Max: h.Max(),
		P50: h.Quantile(0.50), P90: h.Quantile(0.90), P99: h.Quantile(0.99), P999: h.Quantile(0.999),
	}
	return res, ctx.Err()
}
