package random

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"testing"

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

func TestConformance(t *testing.T) { spitest.TestBalancer(t, New()) }

func TestCatalog(t *testing.T) {
	b, err := spi.Default.BuildBalancer(Name, spi.Config(`{}`))
	require.NoError(t, err)
	require.Equal(t, Name, b.Name())
	_, err = spi.Default.BuildBalancer(Name, spi.Config(`{"seed":1}`))
	require.Error(t, err)
}

// shares draws n picks and returns each instance's share in percent.
func shares(t *testing.T, p spi.Picker, info spi.PickInfo, n int) map[string]float64 {
	t.Helper()
	counts := map[string]int{}
	for range n {
		res, err := p.Pick(context.Background(), info)
		require.NoError(t, err)
		counts[res.Instance.Addr]++
	}
	out := map[string]float64{}
	for k, c := range counts {
		out[k] = 100 * float64(c) / float64(n)
	}
	return out
}

// The shares follow the weights. With 100,000 draws the standard error of
// a share near 50% is 0.16 pp, so ±1 pp is over six sigma.
func TestWeightedShares(t *testing.T) {
	ins := instances(1, 2, 7)
	got := shares(t, New().Build(ins), spi.PickInfo{}, 100000)
	for i, want := range []float64{10, 20, 70} {
		require.InDelta(t, want, got[ins[i].Addr], 1, "instance %d", i)
	}
	// Weight 0 means the default, 100.
	ins = instances(0, 100, 300)
	got = shares(t, New().Build(ins), spi.PickInfo{}, 100000)
	for i, want := range []float64{20, 20, 60} {
		require.InDelta(t, want, got[ins[i].Addr], 1, "instance %d", i)
	}
}

// A retry draws again among the rest, still by weight.
func TestExcludeRedrawsByWeight(t *testing.T) {
	ins := instances(7, 1, 2)
	got := shares(t, New().Build(ins), spi.PickInfo{Exclude: []string{ins[0].Addr}}, 60000)
	require.Zero(t, got[ins[0].Addr])
	require.InDelta(t, 100.0/3, got[ins[1].Addr], 1.5)
	require.InDelta(t, 200.0/3, got[ins[2].Addr], 1.5)
}

func TestUniformFastPath(t *testing.T) {
	p := New().Build(instances(5, 5, 5, 5)).(*picker)
	require.True(t, p.uniform)
	got := shares(t, p, spi.PickInfo{}, 40000)
	for _, s := range got {
		require.InDelta(t, 25, s, 1.5)
	}
	require.False(t, New().Build(instances(5, 6)).(*picker).uniform)
}

func TestZeroAllocs(t *testing.T) {
	p := New().Build(instances(1, 2, 3, 4, 5, 6, 7, 8, 9, 10))
	info := spi.PickInfo{Method: "User.Get", Exclude: []string{"10.0.0.1:9000"}}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := p.Pick(ctx, info); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{10, 100} {
		for _, mixed := range []bool{false, true} {
			w := make([]int, n)
			for i := range w {
				w[i] = 100
				if mixed {
					w[i] = 1 + int(math.Pow(float64(i+1), 1.5))
				}
			}
			name := fmt.Sprintf("instances=%d/equal", n)
			if mixed {
				name = fmt.Sprintf("instances=%d/weighted", n)
			}
			b.Run(name, func(b *testing.B) {
				p := New().Build(instances(w...))
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
