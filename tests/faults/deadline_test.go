package faults

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/spi"
)

const (
	slowDeadline = 150 * time.Millisecond
	// deadlineBound: past its deadline, the caller gets DeadlineExceeded
	// and the handler's context is cancelled within this.
	deadlineBound = 150 * time.Millisecond
	slowLimit     = 4 // the server's max_concurrency in this test
)

// slow is a service whose handlers are slower than any caller's patience.
type slow struct {
	active    atomic.Int32
	cancelled chan handlerEnd // one per Wait call that ended

	mu      sync.Mutex
	arrived int
	release chan struct{}
}

type handlerEnd struct {
	at     time.Time
	reason error
}

// Wait blocks until its context ends and reports when and why.
func (s *slow) Wait(ctx context.Context, _ *EchoReq) (*EchoResp, error) {
	s.active.Add(1)
	defer s.active.Add(-1)
	<-ctx.Done()
	s.cancelled <- handlerEnd{at: time.Now(), reason: context.Cause(ctx)}
	return nil, ctx.Err()
}

// Barrier answers once slowLimit calls are inside it at the same time:
// it proves that many slots of the server's concurrency are free.
func (s *slow) Barrier(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	s.mu.Lock()
	s.arrived++
	if s.arrived == slowLimit {
		close(s.release)
	}
	rel := s.release
	s.mu.Unlock()
	select {
	case <-rel:
		return &EchoResp{Seq: r.Seq}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestSlowHandlerDeadline calls handlers that never finish on their own:
// every caller gets DeadlineExceeded within its deadline plus a bound, the
// handlers' contexts are cancelled within the same bound (the deadline
// travels in the frame), and the server's concurrency is given back: the
// full max_concurrency is usable again right after.
func TestSlowHandlerDeadline(t *testing.T) {
	s := &slow{cancelled: make(chan handlerEnd, 64), release: make(chan struct{})}
	_, addr := startServer(t, "s1", core.ServerOptions{MaxConcurrency: slowLimit}, map[string]any{"Slow": s})
	c := newClient(t, core.ClientOptions{
		Targets: []string{addr},
		Retry:   &resilience.Policy{MaxAttempts: 1},
	})
	ctx := context.Background()
	_, err := echoCall(ctx, c, 0)
	require.NoError(t, err)

	// Fill the server with slow calls.
	type result struct {
		err  error
		took time.Duration
		dl   time.Time
	}
	results := make(chan result, slowLimit)
	for range slowLimit {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, slowDeadline)
			defer cancel()
			dl, _ := cctx.Deadline()
			start := time.Now()
			err := c.Call(cctx, "Slow.Wait", &EchoReq{}, &EchoResp{})
			results <- result{err: err, took: time.Since(start), dl: dl}
		}()
	}
	waitFor(t, time.Second, "slow calls in their handlers", func() bool { return s.active.Load() == slowLimit })

	// At the limit, another call is refused, not queued.
	err = c.Call(ctx, "Echo.Echo", &EchoReq{}, &EchoResp{})
	code, msg := codeOf(err)
	assert.Equal(t, spi.ResourceExhausted, code, msg)

	var lastDeadline time.Time
	for range slowLimit {
		r := <-results
		code, msg := codeOf(r.err)
		assert.Equal(t, spi.DeadlineExceeded, code, msg)
		assert.GreaterOrEqual(t, r.took, slowDeadline-5*time.Millisecond)
		assert.Less(t, r.took, slowDeadline+deadlineBound, "caller released past its deadline")
		if r.dl.After(lastDeadline) {
			lastDeadline = r.dl
		}
	}
	for range slowLimit {
		select {
		case end := <-s.cancelled:
			assert.Less(t, end.at.Sub(lastDeadline), deadlineBound, "handler context cancelled past the deadline")
			assert.Error(t, end.reason)
		case <-time.After(slowDeadline + deadlineBound):
			t.Fatal("a handler's context was never cancelled")
		}
	}
	waitFor(t, deadlineBound, "handlers returned", func() bool { return s.active.Load() == 0 })

	// All of max_concurrency is free again: slowLimit calls can be inside
	// handlers at once. The server releases a slot just after its handler
	// returns, so allow it a moment.
	waitFor(t, deadlineBound, "the full concurrency usable again", func() bool {
		s.mu.Lock()
		s.arrived = 0
		s.release = make(chan struct{})
		s.mu.Unlock()
		var wg sync.WaitGroup
		var ok atomic.Int32
		for i := range slowLimit {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				if c.Call(cctx, "Slow.Barrier", &EchoReq{Seq: i}, &EchoResp{}) == nil {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		return ok.Load() == slowLimit
	})
	_, err = echoCall(ctx, c, 1)
	require.NoError(t, err)
}
