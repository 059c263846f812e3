package roundrobin

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/balancerkit"
)

// Name is the catalog name of this balancer.
const Name = "round_robin"

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindBalancer,
		Name:    Name,
		Version: "1.0.0",
		Doc:     "round-robin over instances, ignoring weights; lock-free picks",
		// No settings; decoding still rejects unknown attributes so a
		// typo in kite.hcl is reported instead of ignored.
		New: spi.FactoryOf(func(struct{}) (*Balancer, error) { return New(), nil }),
	})
}

// Balancer is the round-robin balancer. It holds no state between Builds.
type Balancer struct{}

// New returns a round-robin balancer.
func New() *Balancer { return &Balancer{} }

// Name implements spi.Balancer.
func (*Balancer) Name() string { return Name }

// Build implements spi.Balancer.
func (*Balancer) Build(instances []spi.Instance) spi.Picker {
	if len(instances) == 0 {
		return balancerkit.Empty
	}
	p := &picker{instances: slices.Clone(instances)}
	p.next.Store(rand.Uint64N(uint64(len(instances))))
	return p
}

type picker struct {
	// next is the position of the next pick. Its own cache line keeps the
	// contended counter from sharing one with the read-only slice header.
	_         [64]byte
	next      atomic.Uint64
	_         [56]byte
	instances []spi.Instance
}

// Pick implements spi.Picker.
func (p *picker) Pick(_ context.Context, info spi.PickInfo) (spi.PickResult, error) {
	n := uint64(len(p.instances))
	i := (p.next.Add(1) - 1) % n
	if len(info.Exclude) == 0 || !slices.Contains(info.Exclude, p.instances[i].Addr) {
		return spi.PickResult{Instance: p.instances[i]}, nil
	}
	// A retry: walk on from the excluded instance to the next allowed one,
	// without moving the shared counter again.
	for k := uint64(1); k < n; k++ {
		j := (i + k) % n
		if !slices.Contains(info.Exclude, p.instances[j].Addr) {
			return spi.PickResult{Instance: p.instances[j]}, nil
		}
	}
	return spi.PickResult{Instance: p.instances[i]}, nil
}
