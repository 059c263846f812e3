package random

import (
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
	"github.com/kiterpc/kite/spi/spitest"
)

var _ spi.TableBalancer = (*Balancer)(nil)

func weighted(ws ...int) []spi.Instance {
	out := make([]spi.Instance, len(ws))
	for i, w := range ws {
		out[i] = spi.Instance{Service: "s", Addr: "10.0.0." + strconv.Itoa(i+1) + ":1", Weight: w}
	}
	return out
}

func TestTableWeights(t *testing.T) {
	b := New()
	assert.Equal(t, spi.PickTable{}, b.Table(nil))
	count := func(s []int, n int) []int {
		c := make([]int, n)
		for _, i := range s {
			c[i]++
		}
		return c
	}
	// Every instance exactly by weight (reduced by the gcd), the light
	// one included.
	assert.Equal(t, []int{100, 1, 50, 100, 300, 100, 1}, count(b.Table(weighted(0, 1, 50, 100, 300, 100, 1)).Schedule, 7))
	assert.Equal(t, []int{1, 2, 7}, count(b.Table(weighted(100, 200, 700)).Schedule, 3))
	// Scaled to the bound, nobody dropped.
	c := count(b.Table(weighted(1, 1_000_000, 999_999)).Schedule, 3)
	assert.Equal(t, 1, c[0])
	assert.LessOrEqual(t, c[0]+c[1]+c[2], maxSchedule+3)
	// Random order: two tables of a large period differ.
	ins := weighted(100, 100, 100, 100, 100, 100, 100, 100)
	// Two independent pairs must both collide to fail: negligible odds.
	a1, a2 := b.Table(ins).Schedule, b.Table(ins).Schedule
	a3, a4 := b.Table(ins).Schedule, b.Table(ins).Schedule
	assert.False(t, slices.Equal(a1, a2) && slices.Equal(a3, a4))
}

// tableBalancer picks from the table as the plugin bridge does.
type tableBalancer struct{ *Balancer }

func (tb tableBalancer) Build(ins []spi.Instance) spi.Picker {
	ins = slices.Clone(ins)
	p, err := plugin.NewTablePicker(ins, tb.Table(ins))
	if err != nil {
		panic(err)
	}
	return p
}

func TestTableConformance(t *testing.T) {
	spitest.TestBalancer(t, tableBalancer{New()})
}
