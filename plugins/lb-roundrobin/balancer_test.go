package roundrobin

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func instances(n int) []spi.Instance {
	out := make([]spi.Instance, n)
	for i := range out {
		out[i] = spi.Instance{Service: "user", Addr: "10.0.0." + strconv.Itoa(i+1) + ":9000", Weight: (i + 1) * 10}
	}
	return out
}

func TestConformance(t *testing.T) { spitest.TestBalancer(t, New()) }

func TestCatalog(t *testing.T) {
	b, err := spi.Default.BuildBalancer(Name, nil)
	require.NoError(t, err)
	require.Equal(t, Name, b.Name())
	_, err = spi.Default.BuildBalancer(Name, spi.Config(`{"slow_start":"1s"}`))
	require.ErrorContains(t, err, "slow_start", "unknown attributes must be reported")
}

// Round-robin ignores weights: over whole turns every instance gets
// exactly the same count, and consecutive picks walk the list in order.
func TestEvenTurns(t *testing.T) {
	ins := instances(7)
	p := New().Build(ins)
	counts := map[string]int{}
	var prev int = -1
	for range 7 * 100 {
		res, err := p.Pick(context.Background(), spi.PickInfo{})
		require.NoError(t, err)
		counts[res.Instance.Addr]++
		idx := -1
		for i, in := range ins {
			if in.Addr == res.Instance.Addr {
				idx = i
			}
		}
		if prev >= 0 {
			require.Equal(t, (prev+1)%len(ins), idx, "picks must follow the list in turn")
		}
		prev = idx
	}
	for _, in := range ins {
		require.Equal(t, 100, counts[in.Addr], in.Addr)
	}
}

// A retry that excludes the instance it tried lands on the next one,
// and the shared turn is not skipped for other callers.
func TestExcludeStepsOn(t *testing.T) {
	ins := instances(3)
	p := New().Build(ins).(*picker)
	p.next.Store(0)
	res, err := p.Pick(context.Background(), spi.PickInfo{Exclude: []string{ins[0].Addr}})
	require.NoError(t, err)
	require.Equal(t, ins[1].Addr, res.Instance.Addr)
	res, err = p.Pick(context.Background(), spi.PickInfo{})
	require.NoError(t, err)
	require.Equal(t, ins[1].Addr, res.Instance.Addr)
}

func TestZeroAllocs(t *testing.T) {
	p := New().Build(instances(10))
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
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			p := New().Build(instances(n))
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
