package consistenthash

import (
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/balancerkit"
)

// RingHash is the spi.PickTable hash function of the ring Table returns:
// keys are placed with FNV-1a 64 followed by SplitMix64's finaliser, as
// Pick places them.
const RingHash = "fnv1a64-splitmix64"

// maxSchedule bounds the no-key schedule of a table (one period of a
// smooth weighted round-robin); weights are scaled down to fit.
const maxSchedule = 1 << 16

// Table implements spi.TableBalancer: it writes the balancer's decision
// down as data, so that a host serving it out of process picks in its
// own process, lock-free, exactly as the compiled-in picker would.
//
// The Ring is the picker's ring itself, virtual node for virtual node
// (points and owners, ties in the same address order), with HashFunc
// RingHash: a call with an affinity key lands on the same instance, and
// an excluded instance's keys move to the same next instance clockwise,
// in and out of process. Calls without a key walk the Schedule, one
// period of a smooth weighted round-robin over the instances' effective
// weights: the compiled-in picker chooses at random by weight, the table
// spreads by the same weights without the randomness.
//
// Table does not keep or modify instances; the indexes it returns refer
// to its order.
func (b *Balancer) Table(instances []spi.Instance) spi.PickTable {
	if len(instances) == 0 {
		return spi.PickTable{}
	}
	p, ok := b.Build(instances).(*picker)
	if !ok {
		return spi.PickTable{}
	}
	ring := make([]spi.RingPoint, len(p.points))
	for i, pt := range p.points {
		ring[i] = spi.RingPoint{Hash: pt, Index: int(p.owners[i])}
	}
	return spi.PickTable{Schedule: weightedSchedule(instances), Ring: ring, HashFunc: RingHash}
}

// weightedSchedule returns one period of a weighted round-robin over the
// effective weights of instances, reduced by their greatest common divisor
// and, when their sum exceeds maxSchedule, scaled down to fit (every
// instance keeps at least one slot). It is stride scheduling: instance i
// takes its k-th turn at virtual time (k-½)/wᵢ, so its turns are spread
// evenly over the period rather than bunched, and each instance gets
// exactly wᵢ turns (the period's turns are those before time 1). A heap
// keeps it O(period × log n) for services of thousands of instances.
func weightedSchedule(instances []spi.Instance) []int {
	n := len(instances)
	w, total := balancerkit.PeriodWeights(instances, maxSchedule)
	h := make(turns, n)
	for i := range h {
		h[i] = turn{at: 0.5 / float64(w[i]), index: i}
	}
	h.init()
	sched := make([]int, total)
	for k := range sched {
		i := h[0].index
		sched[k] = i
		h[0].at += 1 / float64(w[i])
		h.down(0)
	}
	return sched
}

// turn is an instance's next virtual time in weightedSchedule.
type turn struct {
	at    float64
	index int
}

// turns is a min-heap of turns ordered by time, then by index so that the
// schedule is deterministic.
type turns []turn

func (h turns) less(a, b int) bool {
	if h[a].at != h[b].at {
		return h[a].at < h[b].at
	}
	return h[a].index < h[b].index
}

func (h turns) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h turns) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
