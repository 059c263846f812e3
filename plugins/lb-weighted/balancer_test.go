package weighted

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
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

// fakeClock is a manually advanced clock with a monotonic-free base.
type fakeClock struct{ off atomic.Int64 }

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) Now() time.Time          { return epoch.Add(time.Duration(c.off.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

func TestConformance(t *testing.T) {
	t.Run("plain", func(t *testing.T) { spitest.TestBalancer(t, New(Options{})) })
	t.Run("slow_start", func(t *testing.T) { spitest.TestBalancer(t, New(Options{SlowStart: time.Hour})) })
	t.Run("slow_start_expiring", func(t *testing.T) {
		// A clock that moves a full ramp step on every read, so pickers
		// rebuild their schedule constantly under the suite's load.
		var c fakeClock
		now := func() time.Time { c.Advance(time.Second); return c.Now() }
		spitest.TestBalancer(t, New(Options{SlowStart: 20 * time.Second, Now: now}))
	})
}

func TestCatalog(t *testing.T) {
	v, err := spi.Default.BuildBalancer(Name, spi.Config(`{"slow_start":"30s"}`))
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, v.(*Balancer).slowStart)
	_, err = spi.Default.BuildBalancer(Name, spi.Config(`{"slow_start":"soon"}`))
	require.ErrorContains(t, err, "slow_start")
	_, err = spi.Default.BuildBalancer(Name, spi.Config(`{"slow_start":"-1s"}`))
	require.ErrorContains(t, err, "negative")
	_, err = spi.Default.BuildBalancer(Name, spi.Config(`{"slowstart":"1s"}`))
	require.Error(t, err)
}

func pickCounts(t *testing.T, p spi.Picker, n int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		res, err := p.Pick(context.Background(), spi.PickInfo{})
		require.NoError(t, err)
		counts[res.Instance.Addr]++
	}
	return counts
}

func TestShares(t *testing.T) {
	ins := instances(1, 2, 7)
	counts := pickCounts(t, New(Options{}).Build(ins), 10000)
	for i, want := range []float64{10, 20, 70} {
		require.InDelta(t, want, 100*float64(counts[ins[i].Addr])/10000, 0.5, "instance %d", i)
	}
	// 0 means the default weight 100; scale does not matter, only ratios.
	ins = instances(0, 100, 200)
	counts = pickCounts(t, New(Options{}).Build(ins), 4000)
	require.Equal(t, map[string]int{ins[0].Addr: 1000, ins[1].Addr: 1000, ins[2].Addr: 2000}, counts)
}

// The gcd keeps schedules short: 100:200:700 is a period of 10.
func TestScheduleReducedByGCD(t *testing.T) {
	p := New(Options{}).Build(instances(100, 200, 700)).(*picker)
	require.Len(t, p.sched.Load().order, 10)
	p = New(Options{}).Build(instances(100, 100, 100, 100)).(*picker)
	require.Len(t, p.sched.Load().order, 4)
}

// Smoothness: SWRR interleaves instead of bunching. In every window of
// the cyclic schedule, each instance's count stays within 2 of its fair
// share, and no instance runs longer than its fair burst: the
// ceil(w / (total - w)) picks it must take between two picks of others,
// plus one where two periods join.
func TestSmooth(t *testing.T) {
	for _, ws := range [][]int{{1, 2, 7}, {5, 1, 1}, {3, 3, 3, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 20}, {13, 7, 5, 3, 2, 1}} {
		t.Run(fmt.Sprint(ws), func(t *testing.T) {
			p := New(Options{}).Build(instances(ws...)).(*picker)
			p.next.Store(0)
			total := 0
			for _, w := range ws {
				total += w
			}
			seq := make([]int, 3*total)
			for k := range seq {
				res, err := p.Pick(context.Background(), spi.PickInfo{})
				require.NoError(t, err)
				for i, in := range p.instances {
					if in.Addr == res.Instance.Addr {
						seq[k] = i
					}
				}
			}
			for i, w := range ws {
				fairBurst := (w+(total-w)-1)/(total-w) + 1
				run, longest := 0, 0
				for _, x := range seq {
					if x == i {
						run++
						longest = max(longest, run)
					} else {
						run = 0
					}
				}
				require.LessOrEqual(t, longest, fairBurst, "instance %d (weight %d) ran %d in a row: %v", i, w, longest, seq[:total])
				for start := range total {
					c := 0
					for k := range total {
						if seq[start+k] == i {
							c++
						}
						fair := float64(k+1) * float64(w) / float64(total)
						require.Less(t, math.Abs(float64(c)-fair), 2.0, "window at %d length %d: %v", start, k+1, seq[:total])
					}
				}
			}
		})
	}
}

// Weight sums beyond MaxSchedule are scaled down, keeping the shares and
// every instance in the schedule.
func TestLargeWeightsScaled(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ws := make([]int, 100)
	sum := 0
	for i := range ws {
		ws[i] = 1 + r.IntN(20000)
		sum += ws[i]
	}
	ws[0] = 1 // tiny next to the others: must keep one slot
	sum = 0
	for _, w := range ws {
		sum += w
	}
	p := New(Options{}).Build(instances(ws...)).(*picker)
	order := p.sched.Load().order
	require.LessOrEqual(t, len(order), MaxSchedule+len(ws))
	counts := make([]int, len(ws))
	for _, i := range order {
		counts[i]++
	}
	for i, w := range ws {
		require.Positive(t, counts[i], "instance %d lost its slot", i)
		want := float64(w) / float64(sum)
		got := float64(counts[i]) / float64(len(order))
		require.InDelta(t, want, got, 2.0/MaxSchedule+1e-4, "instance %d", i)
	}
}

// settle picks clockEvery times, so that p has looked at the clock.
func settle(t *testing.T, p spi.Picker) {
	t.Helper()
	for range clockEvery {
		_, err := p.Pick(context.Background(), spi.PickInfo{})
		require.NoError(t, err)
	}
}

func TestSlowStartRamps(t *testing.T) {
	var c fakeClock
	b := New(Options{SlowStart: 30 * time.Second, Now: c.Now})
	ins := instances(100, 100, 100)
	// The first Build's instances are warm: equal shares at once.
	counts := pickCounts(t, b.Build(ins[:2]), 1000)
	require.Equal(t, 500, counts[ins[0].Addr])

	c.Advance(time.Minute)
	p := b.Build(ins) // ins[2] is new
	share := func() float64 {
		settle(t, p)
		counts := pickCounts(t, p, 4100)
		return float64(counts[ins[2].Addr]) / 4100
	}
	// Step 1 of 20: weight 5 against 100 and 100.
	require.InDelta(t, 1.0/41, share(), 1e-9)
	// Half way: step 11 of 20, the same picker rebuilds on its own.
	c.Advance(15 * time.Second)
	require.InDelta(t, 11.0/51, share(), 0.01)
	c.Advance(14 * time.Second) // 29 s: step 20, the last step
	require.InDelta(t, 20.0/60, share(), 0.01)
	c.Advance(time.Second) // 30 s: done ramping, no more clock reads
	require.InDelta(t, 1.0/3, share(), 0.01)
	require.Equal(t, int64(math.MaxInt64), p.(*picker).sched.Load().validUntil)

	// A rebuild keeps the first-seen time: ins[2] stays warm.
	p = b.Build(ins)
	require.InDelta(t, 1.0/3, share(), 0.01)

	// An instance that leaves and comes back ramps again.
	b.Build(ins[:2])
	c.Advance(time.Second)
	p = b.Build(ins)
	require.InDelta(t, 1.0/41, share(), 1e-9)
}

// The ramp is linear in time: the new instance's weight over the whole
// slow start goes through all RampSteps steps, one per slow_start/RampSteps.
func TestSlowStartLinear(t *testing.T) {
	var c fakeClock
	b := New(Options{SlowStart: 20 * time.Second, Now: c.Now})
	ins := instances(7, 3)
	b.Build(ins[:1])
	p := b.Build(ins).(*picker)
	for step := 1; step <= RampSteps; step++ {
		s := p.sched.Load()
		if step > 1 {
			settle(t, p)
			s = p.sched.Load()
		}
		counts := make([]int, 2)
		for _, i := range s.order {
			counts[i]++
		}
		// weights 7·20 and 3·step, reduced by their gcd
		require.InDelta(t, float64(3*step)/float64(140+3*step), float64(counts[1])/float64(len(s.order)), 1e-9, "step %d", step)
		c.Advance(time.Second)
	}
}

// Pickers under concurrent load while the ramp advances: no lock, no
// torn schedule, and every pick valid (run with -race).
func TestSlowStartConcurrentRebuild(t *testing.T) {
	var c fakeClock
	b := New(Options{SlowStart: 2 * time.Second, Now: c.Now})
	ins := instances(1, 2, 3, 4)
	b.Build(ins[:2])
	p := b.Build(ins)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				c.Advance(time.Millisecond)
				res, err := p.Pick(context.Background(), spi.PickInfo{})
				if err != nil || res.Instance.Addr == "" {
					t.Errorf("pick: %v %v", res.Instance, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(math.MaxInt64), p.(*picker).sched.Load().validUntil, "16 s passed: ramp must be over")
}

func TestExcludeWalksSchedule(t *testing.T) {
	ins := instances(1, 2, 7)
	p := New(Options{}).Build(ins)
	counts := map[string]int{}
	for range 1000 {
		res, err := p.Pick(context.Background(), spi.PickInfo{Exclude: []string{ins[2].Addr}})
		require.NoError(t, err)
		counts[res.Instance.Addr]++
	}
	require.Zero(t, counts[ins[2].Addr])
	require.Equal(t, 1000, counts[ins[0].Addr]+counts[ins[1].Addr])
}

func TestZeroAllocs(t *testing.T) {
	var c fakeClock
	b := New(Options{SlowStart: time.Hour, Now: c.Now})
	b.Build(instances(1, 2, 3))
	for _, p := range []spi.Picker{New(Options{}).Build(instances(1, 2, 3, 4, 5)), b.Build(instances(1, 2, 3, 4))} {
		info := spi.PickInfo{Method: "User.Get", Exclude: []string{"10.0.0.1:9000"}}
		ctx := context.Background()
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := p.Pick(ctx, info); err != nil {
				t.Fatal(err)
			}
		})
		require.Zero(t, allocs)
	}
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{10, 100} {
		ws := make([]int, n)
		for i := range ws {
			ws[i] = 50 + 37*i%200
		}
		for _, slow := range []bool{false, true} {
			name := fmt.Sprintf("instances=%d", n)
			bal := New(Options{})
			if slow {
				name += "/ramping"
				bal = New(Options{SlowStart: time.Hour})
				bal.Build(instances(ws[:n-1]...))
			}
			b.Run(name, func(b *testing.B) {
				p := bal.Build(instances(ws...))
				ctx := context.Background()
				info := spi.PickInfo{Method: "User.Get"}
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := p.Pick(ctx, info); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{10, 100} {
		ws := make([]int, n)
		for i := range ws {
			ws[i] = 97 + 13*i%300
		}
		ins := instances(ws...)
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			bal := New(Options{})
			b.ReportAllocs()
			for b.Loop() {
				bal.Build(ins)
			}
		})
	}
}
