package random

import (
	"context"
	"math/rand/v2"
	"slices"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/balancerkit"
)

// Name is the catalog name of this balancer.
const Name = "random"

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindBalancer,
		Name:    Name,
		Version: "1.0.0",
		Doc:     "weighted random choice of instance; lock-free picks",
		// No settings; decoding still rejects unknown attributes.
		New: spi.FactoryOf(func(struct{}) (*Balancer, error) { return New(), nil }),
	})
}

// Balancer is the weighted random balancer. It holds no state between
// Builds.
type Balancer struct{}

// New returns a weighted random balancer.
func New() *Balancer { return &Balancer{} }

// Name implements spi.Balancer.
func (*Balancer) Name() string { return Name }

// Build implements spi.Balancer.
func (*Balancer) Build(instances []spi.Instance) spi.Picker {
	if len(instances) == 0 {
		return balancerkit.Empty
	}
	p := &picker{
		instances: slices.Clone(instances),
		cum:       make([]uint64, len(instances)),
		uniform:   true,
	}
	var total uint64
	for i, in := range instances {
		w := uint64(in.EffectiveWeight())
		total += w
		p.cum[i] = total
		if w != uint64(instances[0].EffectiveWeight()) {
			p.uniform = false
		}
	}
	p.total = total
	return p
}

type picker struct {
	instances []spi.Instance
	// cum[i] is the sum of the weights of instances[0..i].
	cum     []uint64
	total   uint64
	uniform bool
}

// Pick implements spi.Picker.
func (p *picker) Pick(_ context.Context, info spi.PickInfo) (spi.PickResult, error) {
	i := p.draw()
	if len(info.Exclude) == 0 || !slices.Contains(info.Exclude, p.instances[i].Addr) {
		return spi.PickResult{Instance: p.instances[i]}, nil
	}
	return spi.PickResult{Instance: p.instances[p.redraw(i, info.Exclude)]}, nil
}

// draw returns an index with probability weight/total.
func (p *picker) draw() int {
	if p.uniform {
		return rand.IntN(len(p.instances))
	}
	r := rand.Uint64N(p.total)
	// First i with cum[i] > r. Written out rather than sort.Search so the
	// hot path has no closure call per step.
	lo, hi := 0, len(p.cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if p.cum[mid] > r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// redraw picks by weight among the instances not in exclude, or returns
// first when they are all excluded. It runs only for retries, so a linear
// pass is fine.
func (p *picker) redraw(first int, exclude []string) int {
	var remaining uint64
	for _, in := range p.instances {
		if !slices.Contains(exclude, in.Addr) {
			remaining += uint64(in.EffectiveWeight())
		}
	}
	if remaining == 0 {
		return first
	}
	r := rand.Uint64N(remaining)
	for i, in := range p.instances {
		if slices.Contains(exclude, in.Addr) {
			continue
		}
		w := uint64(in.EffectiveWeight())
		if r < w {
			return i
		}
		r -= w
	}
	return first // unreachable: r < remaining
}
