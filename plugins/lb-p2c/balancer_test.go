package p2c

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func instances(weights ...int) []spi.Instance {
	out := make([]spi.Instance, len(weights))
	for i, w := range weights {
		out[i] = spi.Instance{Service: "user", Addr: "10.0.0." + strconv.Itoa(i+1) + ":9000", Weight: w}
	}
	return out
}

func pick(t *testing.T, p spi.Picker, info spi.PickInfo) spi.PickResult {
	t.Helper()
	res, err := p.Pick(context.Background(), info)
	require.NoError(t, err)
	require.NotNil(t, res.Done)
	return res
}

func TestConformance(t *testing.T) {
	b := New(Options{FailurePenalty: time.Second})
	spitest.TestBalancer(t, b)
	// The suite finishes every call it picks: nothing may stay in flight.
	b.mu.Lock()
	defer b.mu.Unlock()
	for addr, e := range b.endpoints {
		require.Zero(t, e.inflight.Load(), addr)
	}
}

func TestCatalog(t *testing.T) {
	v, err := spi.Default.BuildBalancer(Name, nil)
	require.NoError(t, err)
	require.Equal(t, float64(DefaultFailurePenalty), v.(*Balancer).penalty)
	v, err = spi.Default.BuildBalancer(Name, spi.Config(`{"failure_penalty":"250ms"}`))
	require.NoError(t, err)
	require.Equal(t, float64(250*time.Millisecond), v.(*Balancer).penalty)
	_, err = spi.Default.BuildBalancer(Name, spi.Config(`{"failure_penalty":"-1s"}`))
	require.ErrorContains(t, err, "negative")
	_, err = spi.Default.BuildBalancer(Name, spi.Config(`{"failure_penalty":"x"}`))
	require.ErrorContains(t, err, "failure_penalty")
}

// With two instances both are always the candidates, so the choice is
// fully determined by load.
func TestPrefersFewerInFlight(t *testing.T) {
	b := New(Options{})
	ins := instances(100, 100)
	p := b.Build(ins)
	// Load the first instance with 5 calls by excluding the second.
	var held []spi.PickResult
	for range 5 {
		held = append(held, pick(t, p, spi.PickInfo{Exclude: []string{ins[1].Addr}}))
	}
	for _, r := range held {
		require.Equal(t, ins[0].Addr, r.Instance.Addr)
	}
	// Now the second wins until it has as many in flight.
	for k := range 5 {
		r := pick(t, p, spi.PickInfo{})
		require.Equal(t, ins[1].Addr, r.Instance.Addr, "pick %d", k)
		held = append(held, r)
	}
	n0, _, _ := b.Load(ins[0].Addr)
	n1, _, _ := b.Load(ins[1].Addr)
	require.Equal(t, int64(5), n0)
	require.Equal(t, int64(5), n1)
	for _, r := range held {
		r.Done(spi.DoneInfo{Duration: time.Millisecond, Sent: true})
	}
	n0, _, _ = b.Load(ins[0].Addr)
	require.Zero(t, n0)
}

// In-flight counts are per weight: 2 calls on weight 300 is less load
// than 1 call on weight 100.
func TestLoadPerWeight(t *testing.T) {
	b := New(Options{})
	ins := instances(300, 100)
	p := b.Build(ins)
	pick(t, p, spi.PickInfo{Exclude: []string{ins[1].Addr}})
	pick(t, p, spi.PickInfo{Exclude: []string{ins[1].Addr}})
	pick(t, p, spi.PickInfo{Exclude: []string{ins[0].Addr}})
	for range 20 {
		// 3/300 vs 1/100 is a tie on load; 2/300 < 1/100 before it.
		r := pick(t, p, spi.PickInfo{})
		require.Equal(t, ins[0].Addr, r.Instance.Addr)
		r.Done(spi.DoneInfo{Duration: time.Millisecond})
	}
}

// Equal load: the lower EWMA latency wins; failures count as at least
// the penalty, so a fast-failing instance does not attract calls.
func TestLatencyTieBreak(t *testing.T) {
	b := New(Options{FailurePenalty: time.Second})
	ins := instances(100, 100)
	p := b.Build(ins)
	finish := func(addr string, info spi.DoneInfo) {
		r := pick(t, p, spi.PickInfo{Exclude: []string{other(ins, addr)}})
		require.Equal(t, addr, r.Instance.Addr)
		r.Done(info)
	}
	finish(ins[0].Addr, spi.DoneInfo{Duration: 10 * time.Millisecond, Sent: true})
	finish(ins[1].Addr, spi.DoneInfo{Duration: time.Millisecond, Sent: true})
	for range 5 {
		r := pick(t, p, spi.PickInfo{})
		require.Equal(t, ins[1].Addr, r.Instance.Addr)
		r.Done(spi.DoneInfo{Duration: time.Millisecond, Sent: true})
	}
	// The fast one starts failing fast: its average climbs past the other's.
	for range 3 {
		finish(ins[1].Addr, spi.DoneInfo{Err: spi.ErrUnavailable, Duration: time.Microsecond})
	}
	_, lat, _ := b.Load(ins[1].Addr)
	require.Greater(t, lat, 100*time.Millisecond)
	r := pick(t, p, spi.PickInfo{})
	require.Equal(t, ins[0].Addr, r.Instance.Addr)
	r.Done(spi.DoneInfo{Duration: time.Millisecond, Sent: true})
	// Passed over, the failing instance's average decays until it gets a
	// probe call again instead of being starved for good.
	recovered := false
	for range 40 {
		r := pick(t, p, spi.PickInfo{})
		r.Done(spi.DoneInfo{Duration: time.Millisecond, Sent: true})
		if r.Instance.Addr == ins[1].Addr {
			recovered = true
			break
		}
	}
	require.True(t, recovered, "a penalised instance must be retried after enough pass-overs")
	// Application errors are answers, not instance faults: no penalty.
	b2 := New(Options{FailurePenalty: time.Second})
	p2 := b2.Build(ins[:1])
	r = pick(t, p2, spi.PickInfo{})
	r.Done(spi.DoneInfo{Err: spi.ErrNotFound, Duration: 2 * time.Millisecond, Sent: true})
	_, lat, _ = b2.Load(ins[0].Addr)
	require.Equal(t, 2*time.Millisecond, lat)
}

func other(ins []spi.Instance, addr string) string {
	if ins[0].Addr == addr {
		return ins[1].Addr
	}
	return ins[0].Addr
}

// Counters are the balancer's, keyed by address: they survive Builds,
// and calls picked before a Build finish against them.
func TestCountersSurviveBuild(t *testing.T) {
	b := New(Options{})
	ins := instances(100, 100, 100)
	p1 := b.Build(ins)
	r := pick(t, p1, spi.PickInfo{Exclude: []string{ins[1].Addr, ins[2].Addr}})
	p2 := b.Build([]spi.Instance{ins[2], ins[0]}) // reordered, one gone
	n, _, ok := b.Load(ins[0].Addr)
	require.True(t, ok)
	require.Equal(t, int64(1), n)
	_, _, ok = b.Load(ins[1].Addr)
	require.False(t, ok, "an address that left is forgotten")
	// p2 sees the call p1 placed: the other instance wins.
	r2 := pick(t, p2, spi.PickInfo{})
	require.Equal(t, ins[2].Addr, r2.Instance.Addr)
	r.Done(spi.DoneInfo{Duration: time.Millisecond})
	r2.Done(spi.DoneInfo{Duration: time.Millisecond})
	n, lat, _ := b.Load(ins[0].Addr)
	require.Zero(t, n)
	require.Equal(t, time.Millisecond, lat)
}

// A simulation with a slow instance: calls to it take 20 ticks, to the
// others 1 tick. Least-loaded picking starves the slow one of traffic,
// where random choice would give it a tenth.
func TestShedsLoadFromSlowInstance(t *testing.T) {
	b := New(Options{})
	ins := instances(100, 100, 100, 100, 100, 100, 100, 100, 100, 100)
	p := b.Build(ins)
	type call struct {
		due  int
		done func(spi.DoneInfo)
	}
	var inflight []call
	counts := map[string]int{}
	total := 0
	for tick := range 2000 {
		kept := inflight[:0]
		for _, c := range inflight {
			if c.due <= tick {
				c.done(spi.DoneInfo{Duration: time.Millisecond, Sent: true})
			} else {
				kept = append(kept, c)
			}
		}
		inflight = kept
		for range 8 {
			r := pick(t, p, spi.PickInfo{})
			counts[r.Instance.Addr]++
			total++
			d := 1
			if r.Instance.Addr == ins[0].Addr {
				d = 20
			}
			inflight = append(inflight, call{due: tick + d, done: r.Done})
		}
	}
	for _, c := range inflight {
		c.done(spi.DoneInfo{})
	}
	share := float64(counts[ins[0].Addr]) / float64(total)
	t.Logf("slow instance share: %.2f%%", 100*share)
	require.Less(t, share, 0.05)
	for _, in := range ins[1:] {
		require.InDelta(t, 1.0/9, float64(counts[in.Addr])/float64(total), 0.03)
	}
}

func TestConcurrentDoneKeepsCountsExact(t *testing.T) {
	b := New(Options{})
	ins := instances(100, 200, 300, 400)
	p := b.Build(ins)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := p
			for k := range 1000 {
				r, err := p.Pick(context.Background(), spi.PickInfo{})
				if err != nil {
					t.Error(err)
					return
				}
				if k%100 == 0 {
					p = b.Build(ins) // rebuilds race with picks; counts must not care
				}
				r.Done(spi.DoneInfo{Duration: time.Duration(g*k) * time.Microsecond})
			}
		}()
	}
	wg.Wait()
	for _, in := range ins {
		n, _, _ := b.Load(in.Addr)
		require.Zero(t, n, in.Addr)
	}
}

func TestZeroAllocs(t *testing.T) {
	p := New(Options{}).Build(instances(1, 2, 3, 4, 5, 6, 7, 8, 9, 10))
	info := spi.PickInfo{Method: "User.Get", Exclude: []string{"10.0.0.1:9000"}}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		r, err := p.Pick(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		r.Done(spi.DoneInfo{Duration: time.Millisecond})
	})
	require.Zero(t, allocs)
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{10, 100} {
		ws := make([]int, n)
		for i := range ws {
			ws[i] = 100
		}
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			p := New(Options{}).Build(instances(ws...))
			ctx := context.Background()
			info := spi.PickInfo{Method: "User.Get"}
			done := spi.DoneInfo{Duration: time.Millisecond, Sent: true}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, err := p.Pick(ctx, info)
					if err != nil {
						b.Fatal(err)
					}
					r.Done(done)
				}
			})
		})
	}
}
