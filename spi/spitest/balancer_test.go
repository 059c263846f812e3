package spitest_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// refBalancer is the simplest correct balancer: a locked round-robin over
// a private copy. The suite must pass against it, so a failure here is a
// bug in the suite.
type refBalancer struct{}

func (refBalancer) Name() string { return "spitest_ref" }

func (refBalancer) Build(ins []spi.Instance) spi.Picker {
	return &refPicker{ins: slices.Clone(ins)}
}

type refPicker struct {
	mu   sync.Mutex
	next int
	ins  []spi.Instance
}

func (p *refPicker) Pick(_ context.Context, info spi.PickInfo) (spi.PickResult, error) {
	if len(p.ins) == 0 {
		return spi.PickResult{}, spi.ErrNoInstance
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	first := p.next % len(p.ins)
	p.next++
	for i := range p.ins {
		in := p.ins[(first+i)%len(p.ins)]
		if !slices.Contains(info.Exclude, in.Addr) {
			return spi.PickResult{Instance: in, Done: func(spi.DoneInfo) {}}, nil
		}
	}
	return spi.PickResult{Instance: p.ins[first]}, nil
}

func TestBalancerSuiteOnReference(t *testing.T) {
	spitest.TestBalancer(t, refBalancer{})
}
