package random

import (
	"math/rand/v2"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/balancerkit"
)

// maxSchedule bounds a table's schedule; weights are scaled down to fit.
const maxSchedule = 1 << 16

// Table implements spi.TableBalancer, so the balancer keeps its promise
// out of process. Without it the plugin bridge would sample one period of
// picks from the picker, and a random sample of a period can miss a light
// instance altogether (an instance of weight 1 among 652 is left out of
// 652 random picks about a third of the time), which then never gets a
// call. The table is one period in which every instance appears exactly
// in proportion to its effective weight (reduced by the weights' greatest
// common divisor, scaled to at most 65,536 slots, at least one slot
// each), in random order: picks from it are random by weight, like the
// compiled-in picker's, and none is starved.
func (*Balancer) Table(instances []spi.Instance) spi.PickTable {
	if len(instances) == 0 {
		return spi.PickTable{}
	}
	w, total := balancerkit.PeriodWeights(instances, maxSchedule)
	sched := make([]int, 0, total)
	for i, n := range w {
		for range n {
			sched = append(sched, i)
		}
	}
	rand.Shuffle(len(sched), func(a, b int) { sched[a], sched[b] = sched[b], sched[a] })
	return spi.PickTable{Schedule: sched}
}
