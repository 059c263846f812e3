package consistenthash

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
	"github.com/kiterpc/kite/spi/spitest"
)

// tableBalancer serves a balancer the way the plugin bridge does: every
// Build asks for the table and picks from it with the bridge's picker.
type tableBalancer struct{ b *Balancer }

func (tb tableBalancer) Name() string { return tb.b.Name() }

func (tb tableBalancer) Build(instances []spi.Instance) spi.Picker {
	instances = slices.Clone(instances) // the bridge copies them across
	p, err := plugin.NewTablePicker(instances, tb.b.Table(instances))
	if err != nil {
		panic(err)
	}
	return p
}

var _ spi.TableBalancer = (*Balancer)(nil)

// The bridge's picker over the table chooses what the compiled-in picker
// chooses, key for key, with and without exclusions.
func TestTablePicksLikePicker(t *testing.T) {
	sets := map[string][]spi.Instance{
		"equal10":  equal(10),
		"weighted": instances(100, 200, 700),
		"single":   equal(1),
		"mixed":    instances(0, 1, 50, 100, 300, 7, 1000),
	}
	ctx := context.Background()
	for name, ins := range sets {
		for _, replicas := range []int{1, 3, DefaultReplicas} {
			t.Run(name+"/replicas="+strconv.Itoa(replicas), func(t *testing.T) {
				b := New(Options{Replicas: replicas})
				compiled := b.Build(ins)
				bridged, err := plugin.NewTablePicker(ins, b.Table(ins))
				require.NoError(t, err)
				excludes := [][]string{nil, {ins[0].Addr}, {"unknown:1"}}
				if len(ins) > 2 {
					excludes = append(excludes, []string{ins[1].Addr, ins[2].Addr})
				}
				all := make([]string, len(ins))
				for i, in := range ins {
					all[i] = in.Addr
				}
				excludes = append(excludes, all)
				for _, ex := range excludes {
					for k := range 3000 {
						info := spi.PickInfo{Method: "User.Get", Key: "user-" + strconv.Itoa(k), Exclude: ex}
						want, err := compiled.Pick(ctx, info)
						require.NoError(t, err)
						got, err := bridged.Pick(ctx, info)
						require.NoError(t, err)
						if got.Instance.Addr != want.Instance.Addr {
							t.Fatalf("key %q exclude %v: table picks %s, picker %s", info.Key, ex, got.Instance.Addr, want.Instance.Addr)
						}
					}
				}
			})
		}
	}
}

func TestTableShape(t *testing.T) {
	b := New(Options{})
	assert.Equal(t, spi.PickTable{}, b.Table(nil))
	assert.Equal(t, spi.PickTable{}, b.Table([]spi.Instance{}))

	ins := instances(300, 100, 0)
	orig := slices.Clone(ins)
	tab := b.Table(ins)
	assert.Equal(t, orig, ins, "Table must not modify its argument")
	assert.Equal(t, RingHash, tab.HashFunc)
	assert.True(t, slices.IsSortedFunc(tab.Ring, func(a, b spi.RingPoint) int {
		switch {
		case a.Hash < b.Hash:
			return -1
		case a.Hash > b.Hash:
			return 1
		}
		return 0
	}), "ring sorted by hash")
	// Virtual nodes in proportion to weight (300:100:100 of mean 166.7).
	nodes := make([]int, len(ins))
	for _, p := range tab.Ring {
		require.True(t, p.Index >= 0 && p.Index < len(ins))
		nodes[p.Index]++
	}
	assert.Equal(t, []int{288, 96, 96}, nodes)
	// Weights 3:1:1 after the gcd: one period of five.
	assert.Equal(t, []int{0, 0, 1, 2, 0}, tab.Schedule)
}

func counts(sched []int, n int) []int {
	c := make([]int, n)
	for _, i := range sched {
		c[i]++
	}
	return c
}

func gcdOf(ws []int) int {
	g := 0
	for _, w := range ws {
		for w != 0 { // Euclid
			g, w = w, g%w
		}
	}
	return g
}

func TestTableSchedule(t *testing.T) {
	// Exactly the reduced weights, once per period.
	assert.Equal(t, []int{1, 2, 7}, counts(weightedSchedule(instances(100, 200, 700)), 3))
	assert.Equal(t, []int{1, 1, 1, 1}, counts(weightedSchedule(equal(4)), 4))
	assert.Equal(t, []int{100, 1, 50, 100, 300}, counts(weightedSchedule(instances(0, 1, 50, 100, 300)), 5))

	// Spread, not bunched: an instance of reduced weight w takes its k-th
	// turn within n places of (k-½)·P/w in a period of P (stride
	// scheduling's lag bound), so a heavy instance does not take all its
	// turns at once.
	for _, ws := range [][]int{{10, 10, 80}, {1, 2, 7}, {1, 1, 1, 1, 96}, {3, 5, 7, 11}} {
		ins := instances(ws...)
		s := weightedSchedule(ins)
		seen := make([]int, len(ins))
		for pos, i := range s {
			seen[i]++
			w := float64(ins[i].EffectiveWeight()) / float64(gcdOf(ws))
			ideal := (float64(seen[i]) - 0.5) * float64(len(s)) / w
			assert.InDelta(t, ideal, float64(pos), float64(len(ins)), "weights %v: turn %d of instance %d in %v", ws, seen[i], i, s)
		}
	}

	// Weights whose reduced sum exceeds the bound are scaled to it, and
	// every instance keeps a turn.
	big := weightedSchedule(instances(1, 1_000_000, 999_999))
	assert.LessOrEqual(t, len(big), maxSchedule+3)
	c := counts(big, 3)
	assert.Equal(t, 1, c[0])
	assert.InDelta(t, c[1], c[2], 2)

	// Thousands of instances stay quick (a heap, not a scan per turn).
	many := make([]spi.Instance, 70000)
	for i := range many {
		many[i] = spi.Instance{Addr: "10.1." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250) + ":1", Weight: 1 + i%3}
	}
	s := weightedSchedule(many)
	assert.Len(t, s, 70000, "one turn each when the bound is below the instance count")
}

// The conformance suite, picking from the table as the bridge does.
func TestTableConformance(t *testing.T) {
	spitest.TestBalancer(t, tableBalancer{New(Options{})})
}

// The new ring hash is the picker's key placement.
func TestRingHashIsPickerHash(t *testing.T) {
	ins := equal(2)
	for _, key := range []string{"", "a", "user-1", "user-2", "日本"} {
		h := mix64(hashString(key))
		// A one-point ring at exactly the key's hash picks that point's
		// instance; one just below it wraps to the other.
		at, err := plugin.NewTablePicker(ins, spi.PickTable{HashFunc: RingHash, Schedule: []int{0},
			Ring: []spi.RingPoint{{Hash: h - 1, Index: 0}, {Hash: h, Index: 1}}})
		require.NoError(t, err)
		if key == "" {
			continue // no key: the schedule
		}
		r, err := at.Pick(context.Background(), spi.PickInfo{Key: key})
		require.NoError(t, err)
		assert.Equal(t, ins[1].Addr, r.Instance.Addr, "key %q", key)
	}
}
