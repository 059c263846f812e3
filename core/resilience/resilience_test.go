package resilience

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/spi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a manual clock.
type clock struct{ off atomic.Int64 }

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *clock) Now() time.Time          { return epoch.Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

func fixed(v float64) func() float64 { return func() float64 { return v } }

func TestBackoffBounds(t *testing.T) {
	b := Backoff{Min: 10 * time.Millisecond, Max: time.Second, Rand: fixed(0)}
	require.Zero(t, b.Duration(0))
	for n := 1; n < 20; n++ {
		require.Equal(t, 10*time.Millisecond, b.Duration(n), "lowest draw is Min")
	}
	b.Rand = fixed(1)
	want := []time.Duration{20, 40, 80, 160, 320, 640, 1000, 1000}
	for i, w := range want {
		require.Equal(t, w*time.Millisecond, b.Duration(i+1), "attempt %d ceiling", i+1)
	}
	require.Equal(t, time.Second, b.Duration(1<<30), "no overflow for huge attempts")
	b.Rand = fixed(0.5)
	require.Equal(t, 15*time.Millisecond, b.Duration(1))
	b.Multiplier = 3
	require.Equal(t, 20*time.Millisecond, b.Duration(1)) // 10 + 0.5·(30-10)
	// Real randomness stays in range and actually varies.
	b = Backoff{Min: 10 * time.Millisecond, Max: time.Second}
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := b.Duration(3)
		require.GreaterOrEqual(t, d, 10*time.Millisecond)
		require.LessOrEqual(t, d, 80*time.Millisecond)
		seen[d] = true
	}
	require.Greater(t, len(seen), 900, "full jitter spreads the waits")
	require.Zero(t, Backoff{}.Duration(3))
	require.Equal(t, 5*time.Millisecond, Backoff{Max: 10 * time.Millisecond, Rand: fixed(0.5)}.Duration(1))
}

func TestParseBackoff(t *testing.T) {
	b, err := ParseBackoff("10ms..1s")
	require.NoError(t, err)
	require.Equal(t, Backoff{Min: 10 * time.Millisecond, Max: time.Second}, b)
	require.Equal(t, "10ms..1s", b.String())
	b, err = ParseBackoff(" 5ms .. 5ms ")
	require.NoError(t, err)
	require.Equal(t, 5*time.Millisecond, b.Max)
	b, err = ParseBackoff("100ms")
	require.NoError(t, err)
	require.Equal(t, Backoff{Min: 100 * time.Millisecond, Max: 100 * time.Millisecond}, b)
	for _, bad := range []string{"", "1s..", "..1s", "fast", "1s..10ms", "-1s..1s"} {
		_, err := ParseBackoff(bad)
		require.Error(t, err, bad)
	}
}

// Under a total outage, a client making 1000 calls/s for 10 s with up to
// 3 attempts each makes at most calls·(1+ratio) + floor·seconds attempts.
func TestRetryBudgetBoundsOutage(t *testing.T) {
	var c clock
	const (
		ratio   = 0.1
		floor   = 10.0
		seconds = 10
		rate    = 1000
	)
	b := NewRetryBudget(RetryBudgetOptions{Ratio: ratio, MinPerSecond: floor, Now: c.Now})
	calls, attempts := 0, 0
	for range seconds * rate {
		c.Advance(time.Second / rate)
		b.OnCall()
		calls++
		attempts++
		for n := 1; n < 3 && b.CanRetry(); n++ {
			attempts++
		}
	}
	bound := float64(calls)*(1+ratio) + floor*seconds
	t.Logf("calls %d, attempts %d, bound %.0f", calls, attempts, bound)
	require.LessOrEqual(t, float64(attempts), bound)
	// The budget is spent, not hoarded: retries reach nearly the bound.
	require.GreaterOrEqual(t, float64(attempts), 0.97*bound)
}

func TestRetryBudgetFloorAndCap(t *testing.T) {
	var c clock
	b := NewRetryBudget(RetryBudgetOptions{Ratio: 0.1, MinPerSecond: 10, Now: c.Now})
	// No calls at all: the floor alone, first second up front.
	granted := 0
	for range 5000 {
		if b.CanRetry() {
			granted++
		}
		c.Advance(time.Millisecond)
	}
	require.InDelta(t, 50, granted, 1, "10/s over 5 s")
	// A long healthy period saves up no more than the cap (10 s of floor).
	for range 1_000_000 {
		b.OnCall()
	}
	require.InDelta(t, 100, b.Tokens(), 0.01)
	// Explicit cap, no floor: deposits only.
	b = NewRetryBudget(RetryBudgetOptions{Ratio: 0.5, MaxTokens: 3, Now: c.Now})
	require.False(t, b.CanRetry())
	b.OnCall()
	require.False(t, b.CanRetry())
	b.OnCall()
	require.True(t, b.CanRetry())
	for range 100 {
		b.OnCall()
	}
	require.Equal(t, 3.0, b.Tokens())
}

func TestRetryBudgetConcurrent(t *testing.T) {
	var c clock
	b := NewRetryBudget(RetryBudgetOptions{Ratio: 0.2, MinPerSecond: 5, MaxTokens: 1e9, Now: c.Now})
	var granted atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5000 {
				b.OnCall()
				if b.CanRetry() {
					granted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	// Clock frozen: 40,000 calls × 0.2 plus the 5 tokens credited up
	// front, exactly — no token lost or created by races.
	require.Equal(t, int64(8005), granted.Load()+int64(b.Tokens()))
}

type transition struct{ from, to State }

func newTestBreaker(c *clock, cfg BreakerConfig) (*Breaker, *[]transition) {
	var mu sync.Mutex
	var log []transition
	cfg.Now = c.Now
	cfg.OnStateChange = func(from, to State) {
		mu.Lock()
		log = append(log, transition{from, to})
		mu.Unlock()
	}
	return NewBreaker(cfg), &log
}

func call(t *testing.T, b *Breaker, success bool) {
	t.Helper()
	done, ok := b.Allow()
	require.True(t, ok, "breaker refused a call in state %v", b.State())
	done(success)
}

func TestBreakerConsecutiveFailures(t *testing.T) {
	var c clock
	b, log := newTestBreaker(&c, BreakerConfig{ConsecutiveFailures: 3, FailureRatio: -1})
	call(t, b, false)
	call(t, b, false)
	call(t, b, true) // resets the run
	call(t, b, false)
	call(t, b, false)
	require.Equal(t, Closed, b.State())
	call(t, b, false)
	require.Equal(t, Open, b.State())
	require.True(t, b.Ejected())
	_, ok := b.Allow()
	require.False(t, ok)

	// After the base ejection: one probe at a time.
	c.Advance(DefaultBaseEjection)
	require.False(t, b.Ejected())
	probe, ok := b.Allow()
	require.True(t, ok)
	require.Equal(t, HalfOpen, b.State())
	_, ok = b.Allow()
	require.False(t, ok, "only HalfOpenProbes probes at once")
	probe(true)
	require.Equal(t, Closed, b.State())
	require.Equal(t, []transition{{Closed, Open}, {Open, HalfOpen}, {HalfOpen, Closed}}, *log)
}

func TestBreakerFailureRatio(t *testing.T) {
	var c clock
	b, _ := newTestBreaker(&c, BreakerConfig{ConsecutiveFailures: -1, FailureRatio: 0.5, MinRequests: 20, Window: 10 * time.Second})
	// Alternating results: 50% failures, but only once 20 calls are seen.
	for i := range 19 {
		call(t, b, i%2 == 0)
		c.Advance(100 * time.Millisecond)
	}
	require.Equal(t, Closed, b.State())
	call(t, b, false) // 20th call, 10 failures of 20
	require.Equal(t, Open, b.State())

	// Old failures slide out of the window.
	b, _ = newTestBreaker(&c, BreakerConfig{ConsecutiveFailures: -1, FailureRatio: 0.5, MinRequests: 20, Window: 10 * time.Second})
	for range 15 {
		call(t, b, false)
		call(t, b, true)
		call(t, b, true)
	}
	require.Equal(t, Closed, b.State(), "a third failing is below the ratio")
	c.Advance(11 * time.Second)
	for range 19 {
		call(t, b, true)
	}
	call(t, b, false)
	require.Equal(t, Closed, b.State(), "the earlier failures left the window")
}

// Repeated ejections grow: 30 s, 60 s, 120 s … up to the maximum, and are
// forgiven after MaxEjection of health.
func TestBreakerEjectionGrows(t *testing.T) {
	var c clock
	b, _ := newTestBreaker(&c, BreakerConfig{ConsecutiveFailures: 1, BaseEjection: 30 * time.Second, MaxEjection: 100 * time.Second})
	call(t, b, false)
	start := c.Now()
	for _, want := range []time.Duration{30, 60, 100, 100} {
		st := b.Stats()
		require.Equal(t, Open, st.State)
		require.Equal(t, want*time.Second, st.OpenUntil.Sub(start), "ejection %d", st.Ejections)
		c.Advance(want*time.Second - time.Nanosecond)
		_, ok := b.Allow()
		require.False(t, ok, "still ejected just before the end")
		c.Advance(time.Nanosecond)
		probe, ok := b.Allow()
		require.True(t, ok)
		start = c.Now()
		probe(false) // the probe fails: open again, for longer
	}
	// Recover, stay healthy past MaxEjection, fail again: back to 30 s.
	c.Advance(100 * time.Second)
	probe, ok := b.Allow()
	require.True(t, ok)
	probe(true)
	require.Equal(t, Closed, b.State())
	c.Advance(100 * time.Second)
	call(t, b, false)
	st := b.Stats()
	require.Equal(t, 1, st.Ejections)
	require.Equal(t, 30*time.Second, st.OpenUntil.Sub(c.Now()))
}

func TestBreakerIgnoresLateAndLostResults(t *testing.T) {
	var c clock
	b, _ := newTestBreaker(&c, BreakerConfig{ConsecutiveFailures: 2, HalfOpenProbes: 2, BaseEjection: 10 * time.Second})
	// Two calls in flight; the breaker trips on other calls meanwhile.
	late1, _ := b.Allow()
	late2, _ := b.Allow()
	call(t, b, false)
	call(t, b, false)
	require.Equal(t, Open, b.State())
	late1(true) // a success from before the trip does not close it
	require.Equal(t, Open, b.State())
	c.Advance(10 * time.Second)
	p1, ok := b.Allow()
	require.True(t, ok)
	late2(false) // nor does a late failure count against the half-open state
	require.Equal(t, HalfOpen, b.State())
	_, ok = b.Allow()
	require.True(t, ok, "two probes allowed")
	_, ok = b.Allow()
	require.False(t, ok)
	// Both probes are lost (their callbacks never run): after BaseEjection
	// the breaker lets new probes through instead of wedging.
	c.Advance(10 * time.Second)
	p3, ok := b.Allow()
	require.True(t, ok)
	p3(true)
	require.Equal(t, Closed, b.State())
	p1(false) // a stale probe result after closing is ignored
	require.Equal(t, Closed, b.State())
}

func TestBreakerAllowClosedDoesNotAllocate(t *testing.T) {
	b := NewBreaker(BreakerConfig{})
	allocs := testing.AllocsPerRun(1000, func() {
		done, ok := b.Allow()
		if !ok {
			t.Fatal("refused")
		}
		done(true)
	})
	require.Zero(t, allocs)
}

func TestBreakerConcurrent(t *testing.T) {
	var c clock
	b := NewBreaker(BreakerConfig{ConsecutiveFailures: 3, BaseEjection: time.Millisecond, Now: c.Now})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				c.Advance(time.Microsecond)
				if done, ok := b.Allow(); ok {
					done((g+i)%4 != 0)
				}
				_ = b.Ejected()
				_ = b.Stats()
			}
		}()
	}
	wg.Wait()
	require.Contains(t, []State{Closed, Open, HalfOpen}, b.State())
}

func TestBreakers(t *testing.T) {
	var c clock
	type event struct {
		addr     string
		from, to State
	}
	var mu sync.Mutex
	var events []event
	s := NewBreakers(BreakerConfig{ConsecutiveFailures: 1, Now: c.Now}, func(addr string, from, to State) {
		mu.Lock()
		events = append(events, event{addr, from, to})
		mu.Unlock()
	})
	a, b2 := s.Get("10.0.0.1:9000"), s.Get("10.0.0.2:9000")
	require.Same(t, a, s.Get("10.0.0.1:9000"))
	call(t, b2, false)
	require.Equal(t, []string{"10.0.0.2:9000"}, s.AppendEjected(nil))
	require.Equal(t, []event{{"10.0.0.2:9000", Closed, Open}}, events)
	st := s.Stats()
	require.Equal(t, Closed, st["10.0.0.1:9000"].State)
	require.Equal(t, Open, st["10.0.0.2:9000"].State)
	s.Retain([]string{"10.0.0.1:9000"})
	require.Len(t, s.Stats(), 1)
	require.NotSame(t, b2, s.Get("10.0.0.2:9000"), "a forgotten address starts afresh")
	require.Equal(t, "half-open", HalfOpen.String())
	require.Equal(t, "State(9)", State(9).String())
}

func TestShouldRetry(t *testing.T) {
	type tc struct {
		code             spi.Code
		sent, idempotent bool
		want             bool
	}
	for _, c := range []tc{
		{spi.Unavailable, false, false, true},
		{spi.ResourceExhausted, false, false, true},
		{spi.DeadlineExceeded, false, false, true},
		{spi.Unavailable, true, false, false},
		{spi.Unavailable, true, true, true},
		{spi.DeadlineExceeded, true, true, true},
		{spi.DeadlineExceeded, true, false, false},
		{spi.ResourceExhausted, true, true, false},
		{spi.Canceled, false, true, false},
		{spi.Internal, false, true, false},
		{spi.NotFound, false, true, false},
		{spi.Unknown, false, true, false},
		{spi.OK, false, true, false},
	} {
		require.Equal(t, c.want, ShouldRetry(c.code, c.sent, c.idempotent), "%v sent=%v idempotent=%v", c.code, c.sent, c.idempotent)
		require.Equal(t, c.want, Policy{}.ShouldRetry(c.code, c.sent, c.idempotent))
	}
}

func TestFailure(t *testing.T) {
	require.False(t, Failure(nil))
	require.True(t, Failure(spi.ErrUnavailable))
	require.True(t, Failure(context.DeadlineExceeded))
	require.True(t, Failure(errors.New("io: broken pipe")))
	require.False(t, Failure(spi.Errorf(spi.NotFound, "no user 7")))
	require.False(t, Failure(context.Canceled))
}

func TestPolicyValidateAndBuild(t *testing.T) {
	for _, bad := range []Policy{
		{MaxAttempts: -1},
		{Budget: -0.1},
		{MinRetriesPerSecond: -1},
		{Backoff: "1s..10ms"},
		{Idempotent: []string{"Get"}},
		{Idempotent: []string{"User.*Get"}},
	} {
		require.Error(t, bad.Validate(), "%+v", bad)
		_, err := bad.Build(Options{})
		require.Error(t, err)
	}
	r, err := Policy{}.Build(Options{})
	require.NoError(t, err)
	require.Equal(t, DefaultMaxAttempts, r.MaxAttempts())
	require.Equal(t, "10ms..1s", r.Backoff().String())

	r, err = Policy{Idempotent: []string{"User.Get", "Catalog.*"}}.Build(Options{})
	require.NoError(t, err)
	require.True(t, r.IsIdempotent("User.Get"))
	require.False(t, r.IsIdempotent("User.Update"))
	require.True(t, r.IsIdempotent("Catalog.List"))
	require.False(t, r.IsIdempotent("CatalogX.List"))
	r, _ = Policy{Idempotent: []string{"*"}}.Build(Options{})
	require.True(t, r.IsIdempotent("Any.Thing"))
}

func TestRetrierNext(t *testing.T) {
	var c clock
	r, err := Policy{MaxAttempts: 3, Backoff: "10ms..1s", Budget: 0.5, MinRetriesPerSecond: 0.001}.Build(Options{Now: c.Now, Rand: fixed(0)})
	require.NoError(t, err)
	ctx := context.Background()
	for range 10 {
		r.OnCall() // 5 tokens
	}
	wait, ok := r.Next(ctx, 1, spi.ErrUnavailable, false, false)
	require.True(t, ok)
	require.Equal(t, 10*time.Millisecond, wait)
	_, ok = r.Next(ctx, 3, spi.ErrUnavailable, false, false)
	require.False(t, ok, "attempt limit")
	_, ok = r.Next(ctx, 1, spi.ErrUnavailable, true, false)
	require.False(t, ok, "sent, not idempotent")
	_, ok = r.Next(ctx, 1, nil, false, false)
	require.False(t, ok, "success")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, ok = r.Next(cctx, 1, spi.ErrUnavailable, false, false)
	require.False(t, ok, "caller gave up")
	dctx, cancel := context.WithDeadline(ctx, c.Now().Add(5*time.Millisecond))
	defer cancel()
	_, ok = r.Next(dctx, 1, spi.ErrUnavailable, false, false)
	require.False(t, ok, "deadline passes during the wait")
	require.InDelta(t, 4, r.Budget().Tokens(), 0.01, "only the granted retry spent a token")
	// Drain the budget.
	granted := 0
	for range 10 {
		if _, ok := r.Next(ctx, 1, spi.ErrDeadlineExceeded, true, true); ok {
			granted++
		}
	}
	require.Equal(t, 4, granted)
}

// MaxEjectionPercent: of four endpoints at 50%, two may be ejected at
// once; a third failing one stays in rotation (its refusals counted)
// until one of the two is restored, and then trips on its next failure.
// Forgetting an ejected endpoint frees its place too.
func TestMaxEjectionPercent(t *testing.T) {
	var c clock
	s := NewBreakers(BreakerConfig{ConsecutiveFailures: 1, FailureRatio: -1, MaxEjectionPercent: 50, Now: c.Now}, nil)
	addrs := []string{"a:1", "b:1", "c:1", "d:1"}
	s.Retain(addrs)
	bs := make([]*Breaker, len(addrs))
	for i, a := range addrs {
		bs[i] = s.Get(a)
	}
	call(t, bs[0], false)
	call(t, bs[1], false)
	require.Equal(t, Open, bs[0].State())
	require.Equal(t, Open, bs[1].State())
	call(t, bs[2], false)
	call(t, bs[2], false)
	require.Equal(t, Closed, bs[2].State(), "the cap keeps half the fleet in rotation")
	require.Equal(t, 2, bs[2].Stats().Refused)
	require.Len(t, s.AppendEjected(nil), 2)

	// b is restored by a probe: c may go now.
	c.Advance(DefaultBaseEjection)
	probe, ok := bs[1].Allow()
	require.True(t, ok)
	probe(true)
	require.Equal(t, Closed, bs[1].State())
	call(t, bs[2], false)
	require.Equal(t, Open, bs[2].State())

	// a leaves the instance list while ejected: its place frees up.
	call(t, bs[3], false)
	require.Equal(t, Closed, bs[3].State())
	s.Retain([]string{"b:1", "c:1", "d:1", "e:1"})
	call(t, bs[3], false)
	require.Equal(t, Open, bs[3].State())

	// A single endpoint can always be ejected.
	one := NewBreakers(BreakerConfig{ConsecutiveFailures: 1, FailureRatio: -1, MaxEjectionPercent: 10, Now: c.Now}, nil)
	b := one.Get("only:1")
	call(t, b, false)
	require.Equal(t, Open, b.State())
}
