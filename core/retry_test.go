package core

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/spi"
)

// flaky is a service that fails with Unavailable while fail is set, and
// records when each call arrived.
type flaky struct {
	name  string
	fail  atomic.Bool
	calls atomic.Int64

	mu  sync.Mutex
	at  []time.Time
	ids []int
}

func (s *flaky) Do(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	s.calls.Add(1)
	s.mu.Lock()
	s.at = append(s.at, time.Now())
	s.ids = append(s.ids, r.ID)
	s.mu.Unlock()
	if s.fail.Load() {
		return nil, spi.Errorf(spi.Unavailable, "%s is failing", s.name)
	}
	return &EchoResp{ID: r.ID, Text: s.name}, nil
}

// startFlaky serves a flaky service named name on a loopback port.
func startFlaky(t *testing.T, name string, failing bool) (*flaky, string) {
	t.Helper()
	srv, err := NewServer(ServerOptions{Catalog: testCatalog(), Logger: quiet})
	require.NoError(t, err)
	svc := &flaky{name: name}
	svc.fail.Store(failing)
	require.NoError(t, srv.Register("Flaky", svc))
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return svc, ln.Addr().String()
}

// refusedAddr returns a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// hammer makes n calls of method from workers goroutines and returns how
// many failed.
func hammer(c *Client, ctx context.Context, method string, n, workers int) int64 {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if c.Call(ctx, method, &EchoReq{ID: int(i)}, &EchoResp{}) != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return failed.Load()
}

// Against servers that fail every call, the retry budget keeps the total
// attempts under calls·(1+ratio) + floor·seconds, although every call is
// idempotent and may make three attempts.
func TestRetryBudgetBoundsAttemptsUnderOutage(t *testing.T) {
	a, addrA := startFlaky(t, "a", true)
	b, addrB := startFlaky(t, "b", true)
	const (
		ratio = 0.1
		floor = 10.0
		calls = 3000
	)
	// The budget's clock starts with the client: so does T.
	start := time.Now()
	c := newClient(t, ClientOptions{
		Targets: []string{addrA, addrB},
		Retry: &resilience.Policy{
			MaxAttempts: 3, Backoff: "1ms..2ms", Budget: ratio, MinRetriesPerSecond: floor,
			Idempotent: []string{"Flaky.*"},
		},
	})
	failed := hammer(c, context.Background(), "Flaky.Do", calls, 16)
	elapsed := time.Since(start)
	require.EqualValues(t, calls, failed, "every call fails: the servers always do")

	st := c.Stats()
	served := a.calls.Load() + b.calls.Load()
	bound := calls*(1+ratio) + floor*max(elapsed.Seconds(), 1)
	t.Logf("outage: %d calls in %v → %d attempts (%d retries, %d refused by the budget), servers saw %d; bound calls·(1+%.1f)+%.0f/s·max(T,1s) = %.0f (%.3f attempts per call)",
		st.Calls, elapsed.Round(time.Millisecond), st.Attempts, st.Retries, st.BudgetExhausted, served, ratio, floor, bound, float64(st.Attempts)/calls)
	assert.EqualValues(t, calls, st.Calls)
	assert.Equal(t, st.Calls+st.Retries, st.Attempts)
	assert.Equal(t, st.Attempts, uint64(served), "every attempt was sent and reached a server")
	assert.LessOrEqual(t, float64(st.Attempts), bound)
	assert.Positive(t, st.Retries, "the budget allows some retries")
	assert.Positive(t, st.BudgetExhausted, "and refuses the rest")

	// The same outage without a budget (a ratio that always covers two
	// retries) triples the load: what the budget prevents.
	a.calls.Store(0)
	b.calls.Store(0)
	unbounded := newClient(t, ClientOptions{
		Targets: []string{addrA, addrB},
		Retry:   &resilience.Policy{MaxAttempts: 3, Backoff: "1ms..2ms", Budget: 100, Idempotent: []string{"Flaky.*"}},
	})
	const few = 300
	require.EqualValues(t, few, hammer(unbounded, context.Background(), "Flaky.Do", few, 16))
	ust := unbounded.Stats()
	t.Logf("same outage without a budget: %d calls → %d attempts (%.2f per call)", ust.Calls, ust.Attempts, float64(ust.Attempts)/few)
	assert.EqualValues(t, 3*few, ust.Attempts)
	assert.EqualValues(t, 3*few, a.calls.Load()+b.calls.Load())
}

// A failing instance is ejected, gets no calls while ejected, and is
// brought back by a half-open probe once it recovers. Callers see no
// failure: the method is idempotent, so failed attempts move to the
// healthy instance.
func TestFailingInstanceIsEjectedAndProbedBack(t *testing.T) {
	bad, addrBad := startFlaky(t, "bad", true)
	good, addrGood := startFlaky(t, "good", false)
	const base = 300 * time.Millisecond
	c := newClient(t, ClientOptions{
		Targets: []string{addrBad, addrGood},
		Retry:   &resilience.Policy{Backoff: "1ms..2ms", Idempotent: []string{"Flaky.Do"}},
		Breaker: &resilience.BreakerConfig{ConsecutiveFailures: 3, BaseEjection: base, MaxEjection: 4 * base},
	})
	ctx := context.Background()
	call := func(i int) *EchoResp {
		var r EchoResp
		require.NoError(t, c.Call(ctx, "Flaky.Do", &EchoReq{ID: i}, &r))
		return &r
	}
	ejected := func() bool { return assert.ObjectsAreEqual([]string{addrBad}, c.Stats().Ejected) }

	n := 0
	for ; n < 100 && !ejected(); n++ {
		call(n)
	}
	require.True(t, ejected(), "not ejected after %d calls; stats %+v", n, c.Stats())
	ejectedAt := time.Now()
	st := c.Stats()
	t.Logf("ejected after %d calls (%d failed attempts at the bad instance, %d retries); breaker %+v",
		n, bad.calls.Load(), st.Retries, st.Breakers[addrBad])
	assert.EqualValues(t, 3, bad.calls.Load(), "three consecutive failures eject")
	assert.EqualValues(t, 1, st.Ejections)

	// While ejected, calls go to the healthy instance only.
	badBefore, goodBefore := bad.calls.Load(), good.calls.Load()
	during := 0
	for ; during < 30 && time.Since(ejectedAt) < base/2; during++ {
		require.Equal(t, "good", call(1000+during).Text)
	}
	assert.Equal(t, badBefore, bad.calls.Load(), "an ejected instance gets no calls")
	assert.EqualValues(t, during, good.calls.Load()-goodBefore)
	t.Logf("%d calls during the ejection all went to the healthy instance", during)

	// Still failing when the ejection ends: the probe fails and the
	// instance is ejected again, for longer.
	require.Eventually(t, func() bool {
		call(2000)
		return c.Stats().Ejections >= 2
	}, 5*time.Second, time.Millisecond)
	assert.EqualValues(t, badBefore+1, bad.calls.Load(), "one probe, then ejected again")
	st = c.Stats()
	assert.EqualValues(t, 2, st.Breakers[addrBad].Ejections)
	assert.EqualValues(t, 0, st.Restorations)

	// It recovers; the next probe closes the breaker.
	bad.fail.Store(false)
	recovered := time.Now()
	require.Eventually(t, func() bool {
		call(3000)
		return c.Stats().Restorations == 1
	}, 5*time.Second, time.Millisecond)
	t.Logf("probed back %v after recovering (second ejection lasts %v)", time.Since(recovered).Round(time.Millisecond), 2*base)
	st = c.Stats()
	assert.Empty(t, st.Ejected)
	assert.Equal(t, resilience.Closed, st.Breakers[addrBad].State)

	// And it takes its share again.
	badBefore = bad.calls.Load()
	for i := range 100 {
		call(4000 + i)
	}
	assert.InDelta(t, 50, bad.calls.Load()-badBefore, 2, "round robin over two instances again")
}

// A failure after the request was sent is retried only for idempotent
// calls: declared per method, matched by the policy, or marked in the
// call's metadata.
func TestNonIdempotentCallsAreNotRetriedAfterSend(t *testing.T) {
	svc, addr := startFlaky(t, "f", true)
	ctx := context.Background()
	attempts := func(c *Client, ctx context.Context) int64 {
		before := svc.calls.Load()
		err := c.Call(ctx, "Flaky.Do", &EchoReq{}, &EchoResp{})
		require.ErrorIs(t, err, spi.ErrUnavailable)
		return svc.calls.Load() - before
	}
	fast := &resilience.Policy{Backoff: "1ms..2ms"}
	c := newClient(t, ClientOptions{Targets: []string{addr}, Retry: fast})
	assert.EqualValues(t, 1, attempts(c, ctx), "not idempotent: tried once")
	st := c.Stats()
	assert.EqualValues(t, 1, st.Attempts)
	assert.Zero(t, st.Retries)
	assert.Zero(t, st.BudgetExhausted, "not retrying is the rule's decision, not the budget's")

	md := &spi.Metadata{}
	md.Set(spi.MetaIdempotent, "1")
	assert.EqualValues(t, 3, attempts(c, WithMetadata(ctx, md)), "kite-idempotent metadata: retried")

	perMethod := newClient(t, ClientOptions{Targets: []string{addr}, Retry: fast,
		Methods: map[string]MethodOptions{"Flaky.Do": {Idempotent: true}}})
	assert.EqualValues(t, 3, attempts(perMethod, ctx), "idempotent by method option: retried")

	policy := newClient(t, ClientOptions{Targets: []string{addr},
		Retry: &resilience.Policy{Backoff: "1ms..2ms", MaxAttempts: 2, Idempotent: []string{"Flaky.*"}}})
	assert.EqualValues(t, 2, attempts(policy, ctx), "idempotent by the policy's pattern, two attempts at most")

	off := newClient(t, ClientOptions{Targets: []string{addr},
		Methods: map[string]MethodOptions{"Flaky.Do": {Idempotent: true, Retry: &resilience.Policy{MaxAttempts: 1}}}})
	assert.EqualValues(t, 1, attempts(off, ctx), "max_attempts = 1 turns retries off")

	codes := newClient(t, ClientOptions{Targets: []string{addr}, Retry: fast, RetryCodes: []spi.Code{spi.ResourceExhausted},
		Methods: map[string]MethodOptions{"Flaky.Do": {Idempotent: true}}})
	assert.EqualValues(t, 1, attempts(codes, ctx), "Unavailable is not among the retry codes")
}

// A connection that breaks after the request left is a failure after
// send: a non-idempotent call is not repeated on the other instance.
func TestBrokenConnectionAfterSendIsNotRetried(t *testing.T) {
	f1 := startServer(t, ServerOptions{}, "")
	f2 := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f1.addr, f2.addr}, Retry: &resilience.Policy{Backoff: "1ms..2ms"}})
	fut := c.Go(context.Background(), "Echo.Hold", &EchoReq{ID: 1}, &EchoResp{})
	held, other := f1, f2
	select {
	case <-f1.svc.sleepStarted:
	case <-f2.svc.sleepStarted:
		held, other = f2, f1
	}
	require.NoError(t, held.srv.Close())
	close(held.svc.release)
	require.ErrorIs(t, fut.Wait(), spi.ErrUnavailable)
	assert.EqualValues(t, 1, c.Stats().Attempts)
	assert.Empty(t, other.svc.sleepStarted, "the call was not repeated on the other instance")
}

// A failure before the request was sent (connection refused) is retried
// on another instance whatever the method: the server cannot have acted
// on it. Every call runs exactly once.
func TestRefusedConnectionIsRetriedOnAnotherInstance(t *testing.T) {
	dead := refusedAddr(t)
	live, addr := startFlaky(t, "live", false)
	c := newClient(t, ClientOptions{Targets: []string{dead, addr}, Retry: &resilience.Policy{Backoff: "1ms..2ms"}})
	const calls = 200
	ctx := context.Background()
	for i := range calls {
		var r EchoResp
		require.NoError(t, c.Call(ctx, "Flaky.Do", &EchoReq{ID: i}, &r), "call %d", i)
		require.Equal(t, "live", r.Text)
	}
	st := c.Stats()
	t.Logf("%d calls with one of two instances refusing connections: %d attempts, %d retries, %d ejections, ejected %v",
		st.Calls, st.Attempts, st.Retries, st.Ejections, st.Ejected)
	assert.EqualValues(t, calls, live.calls.Load(), "each call ran exactly once")
	live.mu.Lock()
	seen := map[int]int{}
	for _, id := range live.ids {
		seen[id]++
	}
	live.mu.Unlock()
	assert.Len(t, seen, calls)
	assert.Positive(t, st.Retries)
	assert.Equal(t, []string{dead}, st.Ejected, "the refusing instance is ejected")
	assert.EqualValues(t, 1, st.Ejections)
	assert.Less(t, st.Retries, uint64(10), "once ejected, calls no longer try it first")
}

// Retries wait an exponential, jittered backoff between attempts.
func TestRetriesBackOff(t *testing.T) {
	svc, addr := startFlaky(t, "f", true)
	c := newClient(t, ClientOptions{Targets: []string{addr},
		Retry:   &resilience.Policy{MaxAttempts: 4, Backoff: "20ms..1s", Idempotent: []string{"*"}},
		Breaker: &resilience.BreakerConfig{ConsecutiveFailures: -1, FailureRatio: -1}})
	require.ErrorIs(t, c.Call(context.Background(), "Flaky.Do", &EchoReq{}, &EchoResp{}), spi.ErrUnavailable)
	svc.mu.Lock()
	at := append([]time.Time(nil), svc.at...)
	svc.mu.Unlock()
	require.Len(t, at, 4)
	for i := 1; i < len(at); i++ {
		gap := at[i].Sub(at[i-1])
		ceiling := 20 * time.Millisecond << i // Min·2^n for the n-th retry
		t.Logf("retry %d after %v (range 20ms..%v)", i, gap.Round(time.Millisecond), ceiling)
		assert.GreaterOrEqual(t, gap, 20*time.Millisecond)
		assert.Less(t, gap, ceiling+100*time.Millisecond) // scheduling slack
	}
	assert.Zero(t, c.Stats().Ejections, "breaker disabled")
}

// A retry that would outlive the call's deadline is not made, and the
// per-method timeout bounds the whole call.
func TestTimeoutsBoundRetries(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}, Timeout: 5 * time.Second,
		Retry:   &resilience.Policy{Idempotent: []string{"*"}},
		Methods: map[string]MethodOptions{"Echo.Sleep": {Timeout: 50 * time.Millisecond}}})
	start := time.Now()
	err := c.Call(context.Background(), "Echo.Sleep", &EchoReq{}, &EchoResp{})
	require.ErrorIs(t, err, spi.ErrDeadlineExceeded)
	assert.Less(t, time.Since(start), 500*time.Millisecond)
	assert.EqualValues(t, 1, c.Stats().Attempts, "no time left for a retry")
	<-f.svc.sleepDone

	svc, addr := startFlaky(t, "f", true)
	slow := newClient(t, ClientOptions{Targets: []string{addr},
		Retry: &resilience.Policy{MaxAttempts: 5, Backoff: "200ms..1s", Idempotent: []string{"*"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, slow.Call(ctx, "Flaky.Do", &EchoReq{}, &EchoResp{}), spi.ErrUnavailable)
	assert.EqualValues(t, 1, svc.calls.Load(), "a 200ms backoff does not fit in a 100ms deadline")
}

func TestInvalidRetryPolicyIsRejected(t *testing.T) {
	_, err := NewClient(ClientOptions{Targets: []string{"127.0.0.1:1"}, Catalog: testCatalog(), Logger: quiet,
		Retry: &resilience.Policy{Backoff: "fast"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "backoff")
	_, err = NewClient(ClientOptions{Targets: []string{"127.0.0.1:1"}, Catalog: testCatalog(), Logger: quiet,
		Methods: map[string]MethodOptions{"A.B": {Retry: &resilience.Policy{Idempotent: []string{"nodot"}}}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "A.B")
}

// A client that retries safely and ejects failing endpoints: the first
// call finds one instance refusing connections and moves to the other;
// the breaker ejects the refusing one, so the second call goes straight
// to the live instance.
func ExampleClient_Stats() {
	srv, _ := NewServer(ServerOptions{Catalog: testCatalog(), Logger: quiet})
	_ = srv.Register("Flaky", &flaky{name: "live"})
	ln, _ := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	defer srv.Close()
	refusing, _ := net.Listen("tcp", "127.0.0.1:0")
	_ = refusing.Close()

	c, err := NewClient(ClientOptions{
		Targets: []string{ln.Addr().String(), refusing.Addr().String()},
		Retry:   &resilience.Policy{MaxAttempts: 3, Backoff: "1ms..10ms", Budget: 0.1},
		Methods: map[string]MethodOptions{"Flaky.Do": {Timeout: time.Second, Idempotent: true}},
		Breaker: &resilience.BreakerConfig{ConsecutiveFailures: 1, BaseEjection: time.Minute},
		Catalog: testCatalog(), Logger: quiet,
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	for i := range 2 {
		var resp EchoResp
		err := c.Call(context.Background(), "Flaky.Do", &EchoReq{ID: i}, &resp)
		fmt.Println(resp.Text, err)
	}
	st := c.Stats()
	fmt.Println("calls", st.Calls, "attempts", st.Attempts, "retries", st.Retries, "ejected", len(st.Ejected))
	// Output:
	// live <nil>
	// live <nil>
	// calls 2 attempts 3 retries 1 ejected 1
}
