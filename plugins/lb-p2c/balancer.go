package p2c

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/spi"
)

// Name is the catalog name of this balancer.
const Name = "p2c"

// DefaultFailurePenalty is the latency a failed call counts as at least.
const DefaultFailurePenalty = time.Second

// ewmaAlpha is the weight of a new latency sample: 0.3 follows a change
// within a handful of calls while smoothing single outliers.
const ewmaAlpha = 0.3

// Config is the balancer's kite.hcl block.
type Config struct {
	// FailurePenalty is the latency a failed call counts as at least,
	// e.g. "1s".
	FailurePenalty string `json:"failure_penalty,omitempty"`
}

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindBalancer,
		Name:    Name,
		Version: "1.0.0",
		Doc:     "power of two choices on in-flight calls per weight, EWMA latency as tie-breaker",
		Schema: spi.Schema{
			{Name: "failure_penalty", Type: spi.TypeDuration, Doc: `latency a failed call counts as at least (default "1s")`},
		},
		New: spi.FactoryOf(func(c Config) (*Balancer, error) {
			opts := Options{FailurePenalty: DefaultFailurePenalty}
			if c.FailurePenalty != "" {
				d, err := time.ParseDuration(c.FailurePenalty)
				if err != nil {
					return nil, fmt.Errorf("failure_penalty: %w", err)
				}
				if d < 0 {
					return nil, fmt.Errorf("failure_penalty must not be negative, got %v", d)
				}
				opts.FailurePenalty = d
			}
			return New(opts), nil
		}),
	})
}

// Options configure a Balancer.
type Options struct {
	// FailurePenalty is the latency a failed call counts as at least.
	// Zero counts failures at their measured duration.
	FailurePenalty time.Duration
}

// Balancer is the power-of-two-choices balancer. It owns the per-address
// load counters, so they outlive pickers.
type Balancer struct {
	penalty float64 // nanoseconds

	mu        sync.Mutex
	endpoints map[string]*endpoint
}

// New returns a balancer with opts.
func New(opts Options) *Balancer {
	return &Balancer{penalty: float64(opts.FailurePenalty), endpoints: make(map[string]*endpoint)}
}

// Name implements spi.Balancer.
func (*Balancer) Name() string { return Name }

// Load reports the in-flight calls and the latency average the balancer
// holds for addr, for metrics and tests.
func (b *Balancer) Load(addr string) (inflight int64, latency time.Duration, ok bool) {
	b.mu.Lock()
	e := b.endpoints[addr]
	b.mu.Unlock()
	if e == nil {
		return 0, 0, false
	}
	return e.inflight.Load(), time.Duration(math.Float64frombits(e.ewma.Load())), true
}

// Build implements spi.Balancer.
func (b *Balancer) Build(instances []spi.Instance) spi.Picker {
	p := &picker{
		instances: slices.Clone(instances),
		endpoints: make([]*endpoint, len(instances)),
		weights:   make([]int64, len(instances)),
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	present := make(map[string]struct{}, len(instances))
	for i, in := range instances {
		present[in.Addr] = struct{}{}
		e := b.endpoints[in.Addr]
		if e == nil {
			e = &endpoint{penalty: b.penalty}
			e.done = e.finish // bound once: Pick hands it out without allocating
			b.endpoints[in.Addr] = e
		}
		p.endpoints[i] = e
		p.weights[i] = int64(in.EffectiveWeight())
	}
	// Forget addresses that left. Calls still in flight to them finish
	// against the endpoint their picker holds; if the address comes back
	// it starts afresh, as a restarted server should.
	for addr := range b.endpoints {
		if _, ok := present[addr]; !ok {
			delete(b.endpoints, addr)
		}
	}
	return p
}

// endpoint is the load state of one address.
type endpoint struct {
	inflight atomic.Int64
	ewma     atomic.Uint64 // float64 bits: latency average in nanoseconds; 0 = no sample yet
	penalty  float64
	done     func(spi.DoneInfo)
	// Every call writes its endpoint's counters; padding to two cache
	// lines keeps neighbouring endpoints from sharing one.
	_ [128 - 32]byte
}

// finish is the Done of a call picked for e.
func (e *endpoint) finish(info spi.DoneInfo) {
	e.inflight.Add(-1)
	sample := float64(info.Duration)
	if info.Err != nil && blamesEndpoint(spi.CodeOf(info.Err)) {
		sample = max(sample, e.penalty)
	}
	for {
		old := e.ewma.Load()
		avg := math.Float64frombits(old)
		next := sample
		if old != 0 {
			next = avg + ewmaAlpha*(sample-avg)
		}
		if e.ewma.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

func (e *endpoint) latency() float64 { return math.Float64frombits(e.ewma.Load()) }

// passOver records that e lost a pick on latency alone. Its average moves
// toward zero as if it had served a call in no time: with equal load the
// latency tie-break is deterministic, so without this an instance whose
// average was once pushed up (by a failure penalty, a GC pause) would
// never be picked again by a client whose calls do not overlap, and would
// never get the call that shows it has recovered. Now it gets one after
// a bounded number of pass-overs (about 20 for a 1 s penalty against
// 1 ms peers).
func (e *endpoint) passOver() {
	for {
		old := e.ewma.Load()
		if old == 0 {
			return
		}
		next := math.Float64frombits(old) * (1 - ewmaAlpha)
		if e.ewma.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// blamesEndpoint reports whether a call failing with code says something
// about the instance rather than about the request.
func blamesEndpoint(code spi.Code) bool {
	switch code {
	case spi.Unavailable, spi.DeadlineExceeded, spi.ResourceExhausted, spi.Internal, spi.Unknown, spi.DataLoss:
		return true
	}
	return false
}

type picker struct {
	instances []spi.Instance
	endpoints []*endpoint
	weights   []int64
}

// Pick implements spi.Picker.
func (p *picker) Pick(_ context.Context, info spi.PickInfo) (spi.PickResult, error) {
	n := len(p.instances)
	switch n {
	case 0:
		return spi.PickResult{}, spi.ErrNoInstance
	case 1:
		return p.result(0), nil
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++ // two distinct candidates
	}
	if len(info.Exclude) != 0 {
		exI := slices.Contains(info.Exclude, p.instances[i].Addr)
		exJ := slices.Contains(info.Exclude, p.instances[j].Addr)
		switch {
		case exI && exJ:
			if k, ok := p.firstAllowed(info.Exclude); ok {
				return p.result(k), nil
			}
		case exI:
			return p.result(j), nil
		case exJ:
			return p.result(i), nil
		}
	}
	if p.better(j, i) {
		i = j
	}
	return p.result(i), nil
}

// better reports whether candidate a is less loaded than b: fewer calls
// in flight per unit of weight (compared by cross-multiplying, so without
// division), then a lower latency average.
func (p *picker) better(a, b int) bool {
	la := p.endpoints[a].inflight.Load() * p.weights[b]
	lb := p.endpoints[b].inflight.Load() * p.weights[a]
	if la != lb {
		return la < lb
	}
	ea, eb := p.endpoints[a], p.endpoints[b]
	if ea.latency() < eb.latency() {
		eb.passOver()
		return true
	}
	ea.passOver()
	return false
}

// firstAllowed returns the first instance not in exclude, starting at a
// random position so retries spread.
func (p *picker) firstAllowed(exclude []string) (int, bool) {
	n := len(p.instances)
	start := rand.IntN(n)
	for k := range n {
		i := (start + k) % n
		if !slices.Contains(exclude, p.instances[i].Addr) {
			return i, true
		}
	}
	return 0, false
}

func (p *picker) result(i int) spi.PickResult {
	e := p.endpoints[i]
	e.inflight.Add(1)
	return spi.PickResult{Instance: p.instances[i], Done: e.done}
}
