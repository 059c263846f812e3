package weighted

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
	"github.com/kiterpc/kite/spi/balancerkit"
)

// Name is the catalog name of this balancer.
const Name = "weighted"

// MaxSchedule caps the length of a schedule (one SWRR period). Larger
// weight sums are scaled down proportionally; the rounding that costs is
// below 1/MaxSchedule of the traffic per instance.
const MaxSchedule = 1 << 16

// RampSteps is the number of steps in which slow start raises a new
// instance's weight to its full value.
const RampSteps = 20

// rampMaxSchedule caps schedules used while some instance ramps. They are
// rebuilt by a pick (once per ramp step), so their cost, O(length ×
// instances), is kept to well under a millisecond for 100 instances; a
// ramp step is 5% of a weight, so the coarser rounding does not matter.
const rampMaxSchedule = 1 << 12

// clockEvery is how often, in picks, a picker whose schedule can expire
// reads the clock. Reading it costs more than the rest of a pick; a ramp
// step that starts up to clockEvery-1 picks late changes nothing.
const clockEvery = 16

// Config is the balancer's kite.hcl block.
type Config struct {
	// SlowStart is how long a newly seen instance takes to reach its full
	// weight, e.g. "30s". Empty or "0s" disables slow start.
	SlowStart string `json:"slow_start,omitempty"`
}

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindBalancer,
		Name:    Name,
		Version: "1.0.0",
		Doc:     "smooth weighted round-robin (nginx) on instance weights, lock-free picks, optional slow start",
		Schema: spi.Schema{
			{Name: "slow_start", Type: spi.TypeDuration, Doc: `ramp a new instance's weight up linearly over this long, e.g. "30s" (default: off)`},
		},
		New: spi.FactoryOf(func(c Config) (*Balancer, error) {
			var opts Options
			if c.SlowStart != "" {
				d, err := time.ParseDuration(c.SlowStart)
				if err != nil {
					return nil, fmt.Errorf("slow_start: %w", err)
				}
				opts.SlowStart = d
			}
			b := New(opts)
			if err := b.Validate(); err != nil {
				return nil, err
			}
			return b, nil
		}),
	})
}

// Options configure a Balancer.
type Options struct {
	// SlowStart is the ramp-up time of a new instance; 0 disables it.
	SlowStart time.Duration
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
}

// Balancer is the smooth weighted round-robin balancer. Its only state
// across Builds is when it first saw each address, for slow start.
type Balancer struct {
	slowStart time.Duration
	now       func() time.Time

	mu        sync.Mutex
	firstSeen map[string]time.Time // addr → when first seen; only with slow start
	warmedUp  bool                 // a non-empty Build has happened
}

// New returns a balancer with opts.
func New(opts Options) *Balancer {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Balancer{slowStart: opts.SlowStart, now: opts.Now, firstSeen: make(map[string]time.Time)}
}

// Validate implements spi.Validator.
func (b *Balancer) Validate() error {
	if b.slowStart < 0 {
		return fmt.Errorf("slow_start must not be negative, got %v", b.slowStart)
	}
	return nil
}

// Name implements spi.Balancer.
func (*Balancer) Name() string { return Name }

// Build implements spi.Balancer.
func (b *Balancer) Build(instances []spi.Instance) spi.Picker {
	if len(instances) == 0 {
		return balancerkit.Empty
	}
	p := &picker{
		instances: slices.Clone(instances),
		weights:   make([]int64, len(instances)),
		now:       b.now,
	}
	for i, in := range instances {
		p.weights[i] = int64(in.EffectiveWeight())
	}
	// The schedule without ramps is computed here, off the hot path, also
	// when some instance ramps: the pick that ends the ramp then only
	// swaps it in.
	p.full = &schedule{order: swrr(slices.Clone(p.weights), MaxSchedule), validUntil: math.MaxInt64}
	if b.slowStart > 0 {
		p.slowStart = int64(b.slowStart)
		p.base = b.now()
		p.since = b.observe(p.instances, p.base)
	}
	p.sched.Store(p.schedule(0)) // time 0 is the Build itself
	p.next.Store(rand.Uint64())
	return p
}

// observe records first-seen times for new addresses, forgets those that
// left, and returns each instance's first-seen time relative to now.
func (b *Balancer) observe(instances []spi.Instance, now time.Time) []int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	present := make(map[string]struct{}, len(instances))
	since := make([]int64, len(instances))
	for i, in := range instances {
		present[in.Addr] = struct{}{}
		seen, ok := b.firstSeen[in.Addr]
		if !ok {
			seen = now
			if !b.warmedUp {
				// The first instances a client sees are taken as warm.
				seen = now.Add(-b.slowStart)
			}
			b.firstSeen[in.Addr] = seen
		}
		since[i] = int64(seen.Sub(now))
	}
	for addr := range b.firstSeen {
		if _, ok := present[addr]; !ok {
			delete(b.firstSeen, addr)
		}
	}
	b.warmedUp = true
	return since
}

// schedule is one SWRR period, valid until validUntil (nanoseconds after
// the picker's base time; math.MaxInt64 when no instance is ramping).
type schedule struct {
	order      []uint32
	validUntil int64
}

type picker struct {
	// next is the shared position in the schedule. Padding keeps the one
	// contended word off the cache lines of the read-only fields.
	_    [64]byte
	next atomic.Uint64
	_    [56]byte

	sched      atomic.Pointer[schedule]
	rebuilding atomic.Bool
	full       *schedule // the schedule once no instance ramps

	instances []spi.Instance
	weights   []int64
	// Slow start: since[i] is when instance i was first seen and base the
	// picker's time zero; both in nanoseconds, since relative to base.
	slowStart int64
	since     []int64
	base      time.Time
	now       func() time.Time
}

// Pick implements spi.Picker.
func (p *picker) Pick(_ context.Context, info spi.PickInfo) (spi.PickResult, error) {
	n := p.next.Add(1) - 1
	s := p.sched.Load()
	if s.validUntil != math.MaxInt64 && n%clockEvery == 0 {
		if t := int64(p.now().Sub(p.base)); t >= s.validUntil {
			s = p.refresh(s, t)
		}
	}
	pos := n % uint64(len(s.order))
	i := s.order[pos]
	if len(info.Exclude) != 0 && slices.Contains(info.Exclude, p.instances[i].Addr) {
		i = p.skipExcluded(s, pos, info.Exclude)
	}
	return spi.PickResult{Instance: p.instances[i]}, nil
}

// refresh replaces the expired schedule s. One caller rebuilds; the others
// keep using s meanwhile rather than wait.
func (p *picker) refresh(s *schedule, t int64) *schedule {
	if !p.rebuilding.CompareAndSwap(false, true) {
		return s
	}
	defer p.rebuilding.Store(false)
	if cur := p.sched.Load(); cur != s {
		return cur // replaced between our Load and the CAS
	}
	ns := p.schedule(t)
	p.sched.Store(ns)
	return ns
}

// skipExcluded walks on through the schedule from pos to the first
// instance not in exclude; every instance appears in one period, so the
// walk ends within it. When all are excluded it keeps the scheduled one.
func (p *picker) skipExcluded(s *schedule, pos uint64, exclude []string) uint32 {
	scheduled := s.order[pos]
	allExcluded := true
	for _, in := range p.instances {
		if !slices.Contains(exclude, in.Addr) {
			allExcluded = false
			break
		}
	}
	if allExcluded {
		return scheduled
	}
	n := uint64(len(s.order))
	for k := uint64(1); k < n; k++ {
		i := s.order[(pos+k)%n]
		if !slices.Contains(exclude, p.instances[i].Addr) {
			return i
		}
	}
	return scheduled
}

// schedule returns the SWRR period for time t (nanoseconds after base).
func (p *picker) schedule(t int64) *schedule {
	if p.slowStart == 0 {
		return p.full
	}
	// Ramping instances weigh w·step/RampSteps; every weight is multiplied
	// by RampSteps to stay integral (the gcd takes the factor out again).
	w := slices.Clone(p.weights)
	validUntil := int64(math.MaxInt64)
	for i := range w {
		step := int64(RampSteps)
		if age := t - p.since[i]; age < p.slowStart {
			step = max(age, 0)*RampSteps/p.slowStart + 1
			// The next step starts when age*RampSteps/slowStart reaches step.
			next := p.since[i] + (step*p.slowStart+RampSteps-1)/RampSteps
			validUntil = min(validUntil, next)
		}
		w[i] *= step
	}
	if validUntil == math.MaxInt64 {
		return p.full // nobody ramps (any more)
	}
	return &schedule{order: swrr(w, rampMaxSchedule), validUntil: validUntil}
}

// swrr returns one period of nginx's smooth weighted round-robin over
// weights (all positive; changed in place): divided by their gcd, scaled
// down to at most about maxLen, then run step by step. The cost is
// O(period × instances), paid once per schedule instead of per pick.
func swrr(weights []int64, maxLen int64) []uint32 {
	g := int64(0)
	for _, w := range weights {
		g = gcd(g, w)
	}
	var total int64
	for i := range weights {
		weights[i] /= g
		total += weights[i]
	}
	if total > maxLen {
		scaled := int64(0)
		for i, w := range weights {
			// Proportional share of maxLen, at least one slot so that
			// no instance disappears from the schedule.
			weights[i] = max(1, int64(float64(w)*float64(maxLen)/float64(total)))
			scaled += weights[i]
		}
		total = scaled
	}
	order := make([]uint32, total)
	current := make([]int64, len(weights))
	for k := range order {
		best := 0
		for i, w := range weights {
			current[i] += w
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		order[k] = uint32(best)
	}
	return order
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
