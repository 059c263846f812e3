package ratelimitfilter

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a manual clock: time moves only when a test says so.
type clock struct{ ns atomic.Int64 }

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *clock) Now() time.Time          { return base.Add(time.Duration(c.ns.Load())) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newFilter(t testing.TB, o Options) (*Filter, *clock, spi.Invoker, *atomic.Int64) {
	t.Helper()
	c := &clock{}
	o.Now = c.Now
	f, err := NewFilter(o)
	require.NoError(t, err)
	var served atomic.Int64
	inv := f.Wrap(func(context.Context, *spi.Call) error { served.Add(1); return nil })
	return f, c, inv, &served
}

func do(inv spi.Invoker, method, peer string) error {
	return inv(context.Background(), &spi.Call{Side: spi.ServerSide, Method: method, Peer: peer})
}

// allowed counts how many of n calls get through.
func allowed(inv spi.Invoker, n int, method, peer string) int {
	ok := 0
	for range n {
		if do(inv, method, peer) == nil {
			ok++
		}
	}
	return ok
}

func TestGlobalBucket(t *testing.T) {
	_, clk, inv, served := newFilter(t, Options{Rate: 10, Burst: 3})
	require.Equal(t, 3, allowed(inv, 5, "Svc.A", "10.0.0.1:1"), "a full bucket lets the burst through")

	c := &spi.Call{Side: spi.ServerSide, Method: "Svc.B", Peer: "10.0.0.2:1"}
	err := inv(context.Background(), c)
	require.ErrorIs(t, err, spi.ErrResourceExhausted)
	require.EqualError(t, err, "kite: ResourceExhausted: rate limit of 10/s (burst 3) exceeded for the service; retry after 100ms")
	require.Equal(t, "100ms", c.Trailer.Get(TrailerRetryAfter))

	clk.Advance(40 * time.Millisecond)
	err = do(inv, "Svc.A", "")
	require.ErrorContains(t, err, "retry after 60ms", "the hint counts down with the clock")

	clk.Advance(60 * time.Millisecond)
	require.Equal(t, 1, allowed(inv, 3, "Svc.A", ""), "one token refilled after 100ms")
	clk.Advance(250 * time.Millisecond)
	require.Equal(t, 2, allowed(inv, 3, "Svc.A", ""), "2.5 tokens refilled: 2 whole ones")
	clk.Advance(time.Hour)
	require.Equal(t, 3, allowed(inv, 10, "Svc.A", ""), "an idle bucket holds no more than burst")
	require.Equal(t, int64(3+1+2+3), served.Load())
}

func TestSustainedRate(t *testing.T) {
	_, clk, inv, _ := newFilter(t, Options{Rate: 100, Burst: 1})
	total := 0
	for range 1000 { // 1 s in 1 ms steps, 3 attempts each
		total += allowed(inv, 3, "Svc.A", "")
		clk.Advance(time.Millisecond)
	}
	require.Equal(t, 100, total)
}

func TestFractionalRate(t *testing.T) {
	_, clk, inv, _ := newFilter(t, Options{Rate: 0.5}) // burst defaults to 1
	require.Equal(t, 1, allowed(inv, 2, "Svc.A", ""))
	require.ErrorContains(t, do(inv, "Svc.A", ""), "retry after 2s")
	clk.Advance(1999 * time.Millisecond)
	require.ErrorContains(t, do(inv, "Svc.A", ""), "retry after 1ms")
	clk.Advance(time.Millisecond)
	require.NoError(t, do(inv, "Svc.A", ""))
}

func TestPerMethod(t *testing.T) {
	f, _, inv, _ := newFilter(t, Options{Rate: 1, Burst: 2, Per: PerMethod})
	require.Equal(t, 2, allowed(inv, 4, "Svc.A", "10.0.0.1:1"))
	require.Equal(t, 2, allowed(inv, 4, "Svc.B", "10.0.0.1:1"), "each method has its own bucket")
	require.ErrorContains(t, do(inv, "Svc.A", ""), "exceeded for Svc.A; retry after 1s")
	require.Equal(t, 2, f.Buckets())
}

func TestPerPeer(t *testing.T) {
	f, clk, inv, _ := newFilter(t, Options{Rate: 5, Burst: 2, Per: PerPeer})
	// Reconnecting (a new ephemeral port) does not refill the caller's bucket.
	require.Equal(t, 2, allowed(inv, 3, "Svc.A", "10.0.0.1:50000"))
	require.Equal(t, 0, allowed(inv, 3, "Svc.B", "10.0.0.1:50001"))
	require.Equal(t, 2, allowed(inv, 3, "Svc.A", "10.0.0.2:50000"))
	require.Equal(t, 2, allowed(inv, 3, "Svc.A", "[::1]:7"))
	require.ErrorContains(t, do(inv, "Svc.A", "10.0.0.1:9"), "exceeded for peer 10.0.0.1; retry after 200ms")
	clk.Advance(200 * time.Millisecond)
	require.NoError(t, do(inv, "Svc.A", "10.0.0.1:9"))
	require.Equal(t, 3, f.Buckets())
}

func TestPeerBucketsAreBounded(t *testing.T) {
	f, clk, inv, _ := newFilter(t, Options{Rate: 1, Burst: 1, Per: PerPeer, MaxBuckets: 256})
	for i := range 20000 {
		_ = do(inv, "Svc.A", fmt.Sprintf("10.%d.%d.%d:1", i>>16, (i>>8)&255, i&255))
		if i%1000 == 0 {
			clk.Advance(time.Millisecond)
		}
	}
	require.LessOrEqual(t, f.Buckets(), 256)
	require.Greater(t, f.Buckets(), 128, "shards fill before evicting")
}

func TestEvictionPrefersFullBuckets(t *testing.T) {
	// One bucket of room: a single shard with a single slot.
	f, _, inv, _ := newFilter(t, Options{Rate: 1, Burst: 1, Per: PerPeer, MaxBuckets: 1})
	require.Len(t, f.shards, 1)
	require.NoError(t, do(inv, "M", "a:1"))
	require.Error(t, do(inv, "M", "a:1"))
	// b needs the slot while a is still refilling: a is dropped, the only choice.
	require.NoError(t, do(inv, "M", "b:1"))
	require.Equal(t, 1, f.Buckets())

	f, clk, inv, _ := newFilter(t, Options{Rate: 1, Burst: 1, Per: PerPeer, MaxBuckets: 2})
	require.Len(t, f.shards, 2)
	f.shards = f.shards[:1] // put every key in one shard of two slots for a deterministic check
	f.maxPerShard = 2
	require.NoError(t, do(inv, "M", "a:1"))
	clk.Advance(2 * time.Second) // a refills completely
	require.NoError(t, do(inv, "M", "b:1"))
	require.Error(t, do(inv, "M", "b:1"))
	require.NoError(t, do(inv, "M", "c:1")) // evicts a (full), not b (refilling)
	require.Error(t, do(inv, "M", "b:1"), "b kept its state")
	require.Equal(t, 2, f.Buckets())
}

func TestExempt(t *testing.T) {
	_, _, inv, served := newFilter(t, Options{Rate: 1, Burst: 1, Exempt: []string{"Health.*", "Users.Ping"}})
	require.Equal(t, 1, allowed(inv, 3, "Users.Get", ""))
	require.Equal(t, 5, allowed(inv, 5, "Health.Check", ""))
	require.Equal(t, 5, allowed(inv, 5, "Users.Ping", ""))
	require.Equal(t, 0, allowed(inv, 1, "HealthX.Check", ""))
	require.Equal(t, int64(11), served.Load())
}

func TestClientSideHasNoTrailer(t *testing.T) {
	_, _, inv, _ := newFilter(t, Options{Rate: 1, Burst: 1})
	c := &spi.Call{Side: spi.ClientSide, Method: "Svc.A"}
	require.NoError(t, inv(context.Background(), c))
	require.ErrorIs(t, inv(context.Background(), c), spi.ErrResourceExhausted)
	require.Nil(t, c.Trailer)
}

// With the clock stopped, concurrent callers must share exactly burst
// tokens: the CAS loop neither loses nor duplicates one.
func TestConcurrentTakesAreExact(t *testing.T) {
	for _, per := range []Per{PerGlobal, PerPeer} {
		_, _, inv, served := newFilter(t, Options{Rate: 1, Burst: 500, Per: per})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { allowed(inv, 200, "Svc.A", "10.0.0.1:1") })
		}
		wg.Wait()
		require.Equal(t, int64(500), served.Load(), "per %s", per)
	}
}

func TestConfig(t *testing.T) {
	v, err := spi.Default.Build(spi.KindFilter, "ratelimit", spi.Config(`{"rate":100,"burst":20,"per":"peer","max_buckets":5000,"exempt":["Health.*"]}`))
	require.NoError(t, err)
	f := v.(*Filter)
	require.Equal(t, PerPeer, f.per)
	require.Equal(t, 20, f.burst)
	require.Equal(t, int64(10*time.Millisecond), f.interval)
	require.Equal(t, 5000/32, f.maxPerShard)

	v, err = spi.Default.Build(spi.KindFilter, "ratelimit", spi.Config(`{"rate":2.5}`))
	require.NoError(t, err)
	require.Equal(t, 3, v.(*Filter).burst)
	require.Equal(t, PerGlobal, v.(*Filter).per)

	for cfg, msg := range map[string]string{
		`{}`:                               "rate is required",
		`{"rate":0}`:                       "positive",
		`{"rate":-1}`:                      "positive",
		`{"rate":10,"burst":0.5}`:          "burst must be a whole number",
		`{"rate":10,"per":"user"}`:         `per "user"`,
		`{"rate":10,"max_buckets":0}`:      "max_buckets",
		`{"rate":10,"exempt":["*.Check"]}`: "exempt",
		`{"rate":"fast"}`:                  "decoding",
		`{"rate":1e-12,"burst":2e9}`:       "clock",
	} {
		_, err := spi.Default.Build(spi.KindFilter, "ratelimit", spi.Config(cfg))
		require.ErrorContains(t, err, msg, cfg)
	}
}

func BenchmarkGlobal(b *testing.B) {
	f, err := NewFilter(Options{Rate: 1e9, Burst: 1 << 20})
	require.NoError(b, err)
	inv := f.Wrap(func(context.Context, *spi.Call) error { return nil })
	c := &spi.Call{Side: spi.ServerSide, Method: "Svc.A", Peer: "10.0.0.1:1"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = inv(context.Background(), c)
		}
	})
}

func BenchmarkPerPeer(b *testing.B) {
	f, err := NewFilter(Options{Rate: 1e9, Burst: 1 << 20, Per: PerPeer})
	require.NoError(b, err)
	inv := f.Wrap(func(context.Context, *spi.Call) error { return nil })
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := &spi.Call{Side: spi.ServerSide, Method: "Svc.A", Peer: "10.0.0.1:1"}
		for pb.Next() {
			_ = inv(context.Background(), c)
		}
	})
}

func TestRoundUp(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		500 * time.Microsecond:                 500 * time.Microsecond,
		time.Millisecond:                       time.Millisecond,
		40*time.Millisecond + 1:                41 * time.Millisecond,
		1500 * time.Millisecond:                1500 * time.Millisecond,
		999*time.Second + 913*time.Millisecond: 1000 * time.Second,
		10*time.Second + 200*time.Millisecond:  11 * time.Second,
	} {
		require.Equal(t, want, roundUp(in), in.String())
	}
}
