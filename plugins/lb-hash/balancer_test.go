package consistenthash

import (
	"context"
	"fmt"
	"slices"
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

func equal(n int) []spi.Instance {
	ws := make([]int, n)
	for i := range ws {
		ws[i] = 100
	}
	return instances(ws...)
}

// assign maps keys to addresses through p.
func assign(t *testing.T, p spi.Picker, keys int) map[string]string {
	t.Helper()
	out := make(map[string]string, keys)
	for k := range keys {
		key := "user-" + strconv.Itoa(k)
		res, err := p.Pick(context.Background(), spi.PickInfo{Key: key})
		require.NoError(t, err)
		out[key] = res.Instance.Addr
	}
	return out
}

func TestConformance(t *testing.T) {
	spitest.TestBalancer(t, New(Options{}))
	spitest.TestBalancer(t, New(Options{Replicas: 1}))
}

func TestCatalog(t *testing.T) {
	v, err := spi.Default.BuildBalancer(Name, nil)
	require.NoError(t, err)
	require.Equal(t, DefaultReplicas, v.(*Balancer).replicas)
	v, err = spi.Default.BuildBalancer(Name, spi.Config(`{"replicas":40}`))
	require.NoError(t, err)
	require.Equal(t, 40, v.(*Balancer).replicas)
	_, err = spi.Default.BuildBalancer(Name, spi.Config(`{"replicas":-1}`))
	require.ErrorContains(t, err, "replicas")
	_, err = spi.Default.BuildBalancer(Name, spi.Config(`{"replicas":"many"}`))
	require.Error(t, err)
}

func TestSameKeySameInstance(t *testing.T) {
	p := New(Options{}).Build(equal(10))
	first := assign(t, p, 1000)
	require.Equal(t, first, assign(t, p, 1000))
	// A fresh build of the same list, in another order, is the same ring.
	ins := equal(10)
	slices.Reverse(ins)
	require.Equal(t, first, assign(t, New(Options{}).Build(ins), 1000))
	// The key can come from the context instead of PickInfo.
	ctx := spi.WithAffinityKey(context.Background(), "user-7")
	res, err := p.Pick(ctx, spi.PickInfo{})
	require.NoError(t, err)
	require.Equal(t, first["user-7"], res.Instance.Addr)
}

// Removing 1 of 10 instances moves only the keys it held (~10%);
// adding an 11th moves only the keys it takes over (~1/11).
func TestMinimalRemapping(t *testing.T) {
	const keys = 20000
	ins := equal(10)
	b := New(Options{})
	before := assign(t, b.Build(ins), keys)

	removed := ins[3].Addr
	after := assign(t, b.Build(slices.Delete(slices.Clone(ins), 3, 4)), keys)
	moved := 0
	for k, addr := range before {
		if after[k] != addr {
			moved++
			require.Equal(t, removed, addr, "key %s moved from %s, which is still there", k, addr)
		} else {
			require.NotEqual(t, removed, addr)
		}
	}
	frac := float64(moved) / keys
	t.Logf("removing 1 of 10 moved %.2f%% of keys", 100*frac)
	require.InDelta(t, 0.10, frac, 0.03)

	added := spi.Instance{Service: "user", Addr: "10.0.0.99:9000"}
	after = assign(t, b.Build(append(slices.Clone(ins), added)), keys)
	moved = 0
	for k, addr := range before {
		if after[k] != addr {
			moved++
			require.Equal(t, added.Addr, after[k], "key %s moved to %s, not to the new instance", k, after[k])
		}
	}
	frac = float64(moved) / keys
	t.Logf("adding an 11th moved %.2f%% of keys", 100*frac)
	require.InDelta(t, 1.0/11, frac, 0.03)
}

// Shares of the key space follow the weights: 1:2:7 gets about 10/20/70%
// (the ring is deterministic for these addresses; the tolerance covers
// the virtual-node variance, about 2 pp for 480 nodes).
func TestWeightedShares(t *testing.T) {
	ins := instances(1, 2, 7)
	got := assign(t, New(Options{}).Build(ins), 50000)
	counts := map[string]int{}
	for _, a := range got {
		counts[a]++
	}
	for i, want := range []float64{10, 20, 70} {
		share := 100 * float64(counts[ins[i].Addr]) / 50000
		t.Logf("weight %d: %.2f%% (want %.0f%%)", ins[i].Weight, share, want)
		require.InDelta(t, want, share, 5)
	}
	// Equal weights: every instance within ±25% of its fair share.
	ins = equal(10)
	got = assign(t, New(Options{}).Build(ins), 50000)
	counts = map[string]int{}
	for _, a := range got {
		counts[a]++
	}
	for _, in := range ins {
		require.InDelta(t, 5000, counts[in.Addr], 1250, in.Addr)
	}
}

// Without a key the picker spreads calls at random, by weight.
func TestNoKeyIsWeightedRandom(t *testing.T) {
	ins := instances(100, 300)
	p := New(Options{}).Build(ins)
	counts := map[string]int{}
	for range 40000 {
		res, err := p.Pick(context.Background(), spi.PickInfo{})
		require.NoError(t, err)
		counts[res.Instance.Addr]++
	}
	require.InDelta(t, 0.25, float64(counts[ins[0].Addr])/40000, 0.02)
}

// A retry excluding a key's instance goes to the next instance on the
// ring: the same one every time.
func TestExcludeIsStableSecondChoice(t *testing.T) {
	ins := equal(5)
	p := New(Options{}).Build(ins)
	for k := range 200 {
		key := "user-" + strconv.Itoa(k)
		first, err := p.Pick(context.Background(), spi.PickInfo{Key: key})
		require.NoError(t, err)
		second, err := p.Pick(context.Background(), spi.PickInfo{Key: key, Exclude: []string{first.Instance.Addr}})
		require.NoError(t, err)
		require.NotEqual(t, first.Instance.Addr, second.Instance.Addr)
		again, err := p.Pick(context.Background(), spi.PickInfo{Key: key, Exclude: []string{first.Instance.Addr}})
		require.NoError(t, err)
		require.Equal(t, second.Instance.Addr, again.Instance.Addr)
	}
}

func TestRingSize(t *testing.T) {
	p := New(Options{Replicas: 100}).Build(instances(100, 100, 100)).(*picker)
	require.Len(t, p.points, 300)
	p = New(Options{Replicas: 100}).Build(instances(1, 1000)).(*picker)
	// Total stays replicas × instances, give or take rounding and the one
	// node every instance keeps.
	require.InDelta(t, 200, len(p.points), 2)
	require.True(t, slices.IsSorted(p.points))
	// A tiny weight still gets a node.
	p = New(Options{Replicas: 10}).Build(instances(1, 100000)).(*picker)
	require.Contains(t, p.owners, int32(0))
}

func TestZeroAllocs(t *testing.T) {
	p := New(Options{}).Build(equal(10))
	ctx := context.Background()
	for _, info := range []spi.PickInfo{
		{Method: "User.Get", Key: "user-42"},
		{Method: "User.Get"},
		{Method: "User.Get", Key: "user-42", Exclude: []string{"10.0.0.1:9000", "10.0.0.2:9000"}},
	} {
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := p.Pick(ctx, info); err != nil {
				t.Fatal(err)
			}
		})
		require.Zero(t, allocs)
	}
}

func BenchmarkPick(b *testing.B) {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i*7919)
	}
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			p := New(Options{}).Build(equal(n))
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if _, err := p.Pick(ctx, spi.PickInfo{Method: "User.Get", Key: keys[i&1023]}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
