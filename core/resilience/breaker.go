package resilience

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// State is a circuit breaker's state.
type State int32

// Breaker states.
const (
	// Closed lets every call through and watches the results.
	Closed State = iota
	// Open ejects the endpoint: calls are refused until the ejection ends.
	Open
	// HalfOpen lets a few probe calls through; a success closes the
	// breaker, a failure opens it again for longer.
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Breaker defaults.
const (
	DefaultConsecutiveFailures = 5
	DefaultFailureRatio        = 0.5
	DefaultWindow              = 10 * time.Second
	DefaultMinRequests         = 20
	DefaultBaseEjection        = 30 * time.Second
	DefaultMaxEjection         = 5 * time.Minute
	DefaultHalfOpenProbes      = 1
	DefaultMaxEjectionPercent  = 50
)

// windowBuckets is the resolution of the failure-ratio window.
const windowBuckets = 10

// BreakerConfig configures a Breaker. Zero fields take the defaults above.
type BreakerConfig struct {
	// ConsecutiveFailures trips the breaker after this many failures in a
	// row; negative disables the trigger.
	ConsecutiveFailures int
	// FailureRatio trips the breaker when failures / calls over Window
	// reach it, once at least MinRequests calls were seen; negative
	// disables the trigger.
	FailureRatio float64
	Window       time.Duration
	MinRequests  int
	// BaseEjection is how long the first trip keeps the breaker open; each
	// trip that follows without MaxEjection of health in between doubles
	// it, up to MaxEjection.
	BaseEjection time.Duration
	MaxEjection  time.Duration
	// HalfOpenProbes is how many probe calls may be in flight at once
	// after an ejection. A probe that never reports back is given up
	// after BaseEjection, so a lost callback cannot wedge the breaker.
	HalfOpenProbes int
	// MaxEjectionPercent caps, in a Breakers set, the share of endpoints
	// ejected at once; at least one may always be. A breaker that would
	// trip beyond the cap stays closed (and counts the refusal): ejecting
	// most of a small fleet piles its load on the few left, which is how
	// one bad minute becomes an outage. 100 lets every endpoint go.
	MaxEjectionPercent int
	// OnStateChange, if set, is called after every transition, outside
	// the breaker's lock (for metrics and logs).
	OnStateChange func(from, to State)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	c = c.Resolved()
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Resolved returns c with its zero settings set to the defaults, as a
// Breaker runs it (the clock and callback are left as they are).
func (c BreakerConfig) Resolved() BreakerConfig {
	if c.ConsecutiveFailures == 0 {
		c.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if c.FailureRatio == 0 {
		c.FailureRatio = DefaultFailureRatio
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.MinRequests <= 0 {
		c.MinRequests = DefaultMinRequests
	}
	if c.BaseEjection <= 0 {
		c.BaseEjection = DefaultBaseEjection
	}
	if c.MaxEjection <= 0 {
		c.MaxEjection = max(DefaultMaxEjection, c.BaseEjection)
	}
	c.MaxEjection = max(c.MaxEjection, c.BaseEjection)
	if c.HalfOpenProbes <= 0 {
		c.HalfOpenProbes = DefaultHalfOpenProbes
	}
	if c.MaxEjectionPercent <= 0 {
		c.MaxEjectionPercent = DefaultMaxEjectionPercent
	}
	c.MaxEjectionPercent = min(c.MaxEjectionPercent, 100)
	return c
}

type bucket struct {
	slot          int64 // time / bucket width; identifies the bucket's period
	calls, failed int
}

// Breaker is a circuit breaker for one endpoint, doing outlier ejection:
// it opens after ConsecutiveFailures failures in a row or a FailureRatio
// over Window, stays open for an ejection time that grows with repeated
// ejections, then lets HalfOpenProbes probe calls through and closes on
// the first success.
//
// Allow is lock-free while the breaker is closed (one atomic load, no
// allocation); reporting a result takes a short per-endpoint lock.
type Breaker struct {
	cfg   BreakerConfig
	state atomic.Int32

	mu          sync.Mutex
	consecutive int
	window      [windowBuckets]bucket
	bucketWidth int64
	openUntil   time.Time
	ejections   int            // trips since the last long healthy period
	closedAt    time.Time      // when the breaker last closed
	probes      int            // probes in flight
	probeSince  time.Time      // when the last probe was let through
	refused     int            // trips refused by the set's ejection cap
	guard       *ejectionGuard // the set's cap; nil when alone or removed

	recordFn func(bool) // b.record, bound once so Allow does not allocate
	probeFn  func(bool) // b.probeDone, likewise
}

// NewBreaker returns a closed breaker.
func NewBreaker(cfg BreakerConfig) *Breaker {
	b := &Breaker{cfg: cfg.withDefaults()}
	b.bucketWidth = max(int64(b.cfg.Window)/windowBuckets, 1)
	b.closedAt = b.cfg.Now()
	b.recordFn = b.record
	b.probeFn = b.probeDone
	return b
}

// Allow asks whether a call may go to the endpoint. When ok, the caller
// must call done exactly once with whether the call succeeded as far as
// the endpoint's health goes (see Failure). When not ok, the endpoint is
// ejected: pick another.
func (b *Breaker) Allow() (done func(success bool), ok bool) {
	if State(b.state.Load()) == Closed {
		return b.recordFn, true
	}
	b.mu.Lock()
	now := b.cfg.Now()
	var from, to State
	switch State(b.state.Load()) {
	case Closed:
		b.mu.Unlock()
		return b.recordFn, true
	case Open:
		if now.Before(b.openUntil) {
			b.mu.Unlock()
			return nil, false
		}
		from, to = Open, HalfOpen
		b.state.Store(int32(HalfOpen))
		b.probes = 0
	}
	if b.probes >= b.cfg.HalfOpenProbes {
		if now.Sub(b.probeSince) < b.cfg.BaseEjection {
			b.mu.Unlock()
			return nil, false
		}
		b.probes = 0 // the probes in flight never reported: give up on them
	}
	b.probes++
	b.probeSince = now
	b.mu.Unlock()
	b.notify(from, to)
	return b.probeFn, true
}

// record is done for calls let through while closed.
func (b *Breaker) record(success bool) {
	b.mu.Lock()
	if State(b.state.Load()) != Closed {
		// A call from before the trip: the breaker already acted on
		// evidence enough; this one neither trips nor heals it.
		b.mu.Unlock()
		return
	}
	now := b.cfg.Now()
	slot := now.UnixNano() / b.bucketWidth
	bk := &b.window[slot%windowBuckets]
	if bk.slot != slot {
		*bk = bucket{slot: slot}
	}
	bk.calls++
	if success {
		b.consecutive = 0
	} else {
		bk.failed++
		b.consecutive++
	}
	trip := b.cfg.ConsecutiveFailures > 0 && b.consecutive >= b.cfg.ConsecutiveFailures
	if !trip && !success && b.cfg.FailureRatio > 0 {
		calls, failed := 0, 0
		for _, w := range b.window {
			if w.slot > slot-windowBuckets {
				calls += w.calls
				failed += w.failed
			}
		}
		trip = calls >= b.cfg.MinRequests && float64(failed) >= b.cfg.FailureRatio*float64(calls)
	}
	if trip && !b.guard.acquire() {
		// Too many endpoints ejected already: stay in rotation. The
		// counters keep running, so the breaker trips as soon as the
		// cap allows it.
		trip = false
		b.refused++
	}
	if trip {
		b.trip(now)
	}
	b.mu.Unlock()
	if trip {
		b.notify(Closed, Open)
	}
}

// probeDone is done for probe calls let through while half-open.
func (b *Breaker) probeDone(success bool) {
	b.mu.Lock()
	if State(b.state.Load()) != HalfOpen {
		b.mu.Unlock()
		return
	}
	b.probes = max(b.probes-1, 0)
	now := b.cfg.Now()
	to := Open
	if success {
		to = Closed
		b.state.Store(int32(Closed))
		b.guard.release()
		b.closedAt = now
		b.consecutive = 0
		b.window = [windowBuckets]bucket{}
	} else {
		b.trip(now)
	}
	b.mu.Unlock()
	b.notify(HalfOpen, to)
}

// trip opens the breaker; b.mu must be held.
func (b *Breaker) trip(now time.Time) {
	if State(b.state.Load()) == Closed && now.Sub(b.closedAt) >= b.cfg.MaxEjection {
		b.ejections = 0 // healthy long enough: forgive earlier ejections
	}
	b.ejections++
	d := b.cfg.BaseEjection
	for i := 1; i < b.ejections && d < b.cfg.MaxEjection; i++ {
		d *= 2
	}
	d = min(d, b.cfg.MaxEjection)
	b.openUntil = now.Add(d)
	b.state.Store(int32(Open))
	b.consecutive = 0
	b.window = [windowBuckets]bucket{}
	b.probes = 0
}

func (b *Breaker) notify(from, to State) {
	if from != to && b.cfg.OnStateChange != nil {
		b.cfg.OnStateChange(from, to)
	}
}

// State returns the breaker's state. An Open breaker whose ejection has
// run out still reports Open until the next Allow moves it to HalfOpen.
func (b *Breaker) State() State { return State(b.state.Load()) }

// Ejected reports whether Allow would refuse a call now: the breaker is
// open and its ejection has not run out. A client can pass the ejected
// endpoints to its balancer as PickInfo.Exclude.
func (b *Breaker) Ejected() bool {
	if b.State() != Open {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return State(b.state.Load()) == Open && b.cfg.Now().Before(b.openUntil)
}

// BreakerStats is a snapshot of a breaker, for metrics.
type BreakerStats struct {
	State State
	// Ejections counts the trips since the endpoint was last healthy for
	// MaxEjection; it sets the length of the next ejection.
	Ejections int
	// OpenUntil is when the current or last ejection ends.
	OpenUntil time.Time
	// Refused counts trips the set's MaxEjectionPercent held back.
	Refused int
}

// Stats returns a snapshot of b.
func (b *Breaker) Stats() BreakerStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BreakerStats{State: b.State(), Ejections: b.ejections, OpenUntil: b.openUntil, Refused: b.refused}
}

// Breakers holds one Breaker per endpoint address, created on first use.
type Breakers struct {
	cfg      BreakerConfig
	onChange func(addr string, from, to State)
	guard    *ejectionGuard

	mu sync.RWMutex
	m  map[string]*Breaker
}

// NewBreakers returns an empty set whose breakers use cfg; onChange, if
// not nil, is told of every transition of every breaker (cfg's own
// OnStateChange is replaced by it).
func NewBreakers(cfg BreakerConfig, onChange func(addr string, from, to State)) *Breakers {
	cfg = cfg.withDefaults()
	return &Breakers{cfg: cfg, onChange: onChange, m: make(map[string]*Breaker), guard: &ejectionGuard{percent: cfg.MaxEjectionPercent}}
}

// ejectionGuard enforces MaxEjectionPercent over a set. It is touched
// only through atomics, from under one breaker's lock: no lock order to
// keep with the set's.
type ejectionGuard struct {
	percent int
	size    atomic.Int32 // endpoints known to the set
	open    atomic.Int32 // breakers open or half-open
}

// acquire reserves one ejection, or reports that the cap is reached.
func (g *ejectionGuard) acquire() bool {
	if g == nil {
		return true
	}
	limit := max(1, int32(int(g.size.Load())*g.percent/100))
	for {
		n := g.open.Load()
		if n >= limit {
			return false
		}
		if g.open.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (g *ejectionGuard) release() {
	if g != nil {
		g.open.Add(-1)
	}
}

// detach takes b out of its set's accounting (the endpoint left).
func (b *Breaker) detach() {
	b.mu.Lock()
	if State(b.state.Load()) != Closed {
		b.guard.release()
	}
	b.guard = nil
	b.mu.Unlock()
}

// Get returns the breaker of addr, creating it closed if needed.
func (s *Breakers) Get(addr string) *Breaker {
	s.mu.RLock()
	b := s.m[addr]
	s.mu.RUnlock()
	if b != nil {
		return b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b = s.m[addr]; b != nil {
		return b
	}
	cfg := s.cfg
	if s.onChange != nil {
		cfg.OnStateChange = func(from, to State) { s.onChange(addr, from, to) }
	}
	b = NewBreaker(cfg)
	b.guard = s.guard
	s.m[addr] = b
	s.guard.size.Store(int32(max(len(s.m), int(s.guard.size.Load()))))
	return b
}

// Retain forgets the breakers of addresses not in addrs (instances that
// left the registry), so the set does not grow without bound.
//
// The instance count is also the base of MaxEjectionPercent.
func (s *Breakers) Retain(addrs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for addr, b := range s.m {
		if !slices.Contains(addrs, addr) {
			delete(s.m, addr)
			b.detach()
		}
	}
	s.guard.size.Store(int32(max(len(s.m), len(addrs))))
}

// AppendEjected appends the addresses whose breakers currently refuse
// calls to dst and returns it; pass the result as PickInfo.Exclude.
func (s *Breakers) AppendEjected(dst []string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for addr, b := range s.m {
		if b.Ejected() {
			dst = append(dst, addr)
		}
	}
	return dst
}

// Stats returns a snapshot of every breaker, keyed by address.
func (s *Breakers) Stats() map[string]BreakerStats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]BreakerStats, len(s.m))
	for addr, b := range s.m {
		out[addr] = b.Stats()
	}
	return out
}
