package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/spi"
)

// This file is the client's resilience layer. It sits between the filters
// and the per-attempt send:
//
//	filters → retrying (per-call loop: budget, rule, backoff, exclusion)
//	        → send (one attempt: pick with breakers → pool → round trip)
//
// so a filter sees one call however many attempts it took, and every
// attempt goes through the balancer again, with the instances already
// tried and the ejected ones excluded.

// MethodOptions are the settings of one method ("Service.Method"),
// kite.hcl's `method "Service.Method" { … }` block inside a client.
type MethodOptions struct {
	// Timeout bounds the whole call, retries and backoff included, when
	// the caller's context has no earlier deadline; 0 takes the client's
	// Timeout.
	Timeout time.Duration
	// Idempotent marks the method safe to run twice, so that it may be
	// retried even after the request reached the wire. The server's
	// MethodDesc.Idempotent is not known to the client; this, the retry
	// policy's idempotent list and the call metadata kite-idempotent = "1"
	// are what the client goes by.
	Idempotent bool
	// Retry replaces the client's retry policy for the method (attempts,
	// backoff, idempotent patterns); nil takes the client's. The retry
	// budget is always the client's: it is shared by all of its calls so
	// that no method can escape it.
	Retry *resilience.Policy
	// RetryCodes, when not empty, limits the method's retries to failures
	// with these codes; nil takes the client's RetryCodes.
	RetryCodes []spi.Code
}

// ClientStats is a snapshot of a client's resilience counters, for
// metrics. The counters only grow; rates are the caller's business.
type ClientStats struct {
	// Calls counts unary and one-way calls placed (streams not included).
	Calls uint64
	// Attempts counts the attempts of those calls, first ones included:
	// Attempts - Calls = Retries.
	Attempts uint64
	// Retries counts the attempts after the first.
	Retries uint64
	// BudgetExhausted counts failed attempts that the retry rule allowed
	// to retry but the retry budget did not.
	BudgetExhausted uint64
	// Ejections counts circuit breaker trips: an endpoint taken out of
	// rotation (again, when a half-open probe failed).
	Ejections uint64
	// Restorations counts ejected endpoints brought back by a successful
	// half-open probe.
	Restorations uint64
	// BudgetTokens is the number of retries the budget holds now.
	BudgetTokens float64
	// Ejected lists the endpoints currently ejected.
	Ejected []string
	// Breakers holds the breaker of every endpoint seen, by address.
	Breakers map[string]resilience.BreakerStats
}

// callPolicy is the effective retry and timeout settings of a method.
type callPolicy struct {
	timeout     time.Duration
	idempotent  bool                // declared for the method
	retrier     *resilience.Retrier // attempts, backoff, idempotent patterns
	maxAttempts int
	backoff     resilience.Backoff
	codes       []spi.Code
}

// resilienceState is a client's retry and breaker state.
type resilienceState struct {
	log hclog.Logger
	// pol holds the retry settings, swapped whole by SetRetry.
	pol atomic.Pointer[policySet]
	// breakers is swapped whole by SetBreaker; a call holds the set it
	// picked with until it reports.
	breakers atomic.Pointer[resilience.Breakers]

	// open counts breakers in the Open state. It is recounted on every
	// transition (rare) so that the hot path can skip asking the breakers
	// for ejected endpoints with a single atomic load when none is.
	open    atomic.Int32
	countMu sync.Mutex

	calls, attempts, retries, budgetExhausted atomic.Uint64
	ejections, restorations                   atomic.Uint64
}

// errEjected is reported to a balancer's Done for a pick that the chosen
// endpoint's breaker refused.
var errEjected = spi.Errorf(spi.Unavailable, "endpoint ejected by its circuit breaker")

// policySet is a client's retry settings: the default policy, the
// per-method ones, and the budget they all draw on. Read-only once built.
type policySet struct {
	def     *callPolicy
	methods map[string]*callPolicy
	budget  *resilience.RetryBudget
}

// RetrySettings are the parts of ClientOptions that SetRetry replaces.
type RetrySettings struct {
	Timeout    time.Duration
	Retry      *resilience.Policy
	RetryCodes []spi.Code
	Methods    map[string]MethodOptions
}

func buildPolicies(s RetrySettings) (*policySet, error) {
	pol := resilience.Policy{}
	if s.Retry != nil {
		pol = *s.Retry
	}
	def, err := newCallPolicy(pol, s.Timeout, false, s.RetryCodes)
	if err != nil {
		return nil, fmt.Errorf("kite: client %w", err)
	}
	ps := &policySet{
		def:     def,
		methods: make(map[string]*callPolicy, len(s.Methods)),
		// The client's retrier owns the budget every method draws on.
		budget: def.retrier.Budget(),
	}
	for name, m := range s.Methods {
		p, codes := pol, s.RetryCodes
		if m.Retry != nil {
			p = *m.Retry
		}
		if m.RetryCodes != nil {
			codes = m.RetryCodes
		}
		timeout := m.Timeout
		if timeout <= 0 {
			timeout = s.Timeout
		}
		mp, err := newCallPolicy(p, timeout, m.Idempotent, codes)
		if err != nil {
			return nil, fmt.Errorf("kite: method %s: %w", name, err)
		}
		ps.methods[name] = mp
	}
	return ps, nil
}

// SetRetry replaces the client's timeouts, retry policies, retryable
// codes and per-method settings (idempotency included) in a running
// client (kite.hcl's reload uses it). Calls in flight finish under the
// settings they started with; the retry budget starts full.
func (c *Client) SetRetry(s RetrySettings) error {
	ps, err := buildPolicies(s)
	if err != nil {
		return err
	}
	c.res.pol.Store(ps)
	return nil
}

func newResilience(o *ClientOptions, log hclog.Logger) (*resilienceState, error) {
	ps, err := buildPolicies(RetrySettings{Timeout: o.Timeout, Retry: o.Retry, RetryCodes: o.RetryCodes, Methods: o.Methods})
	if err != nil {
		return nil, err
	}
	r := &resilienceState{log: log}
	r.pol.Store(ps)
	bc := resilience.BreakerConfig{}
	if o.Breaker != nil {
		bc = *o.Breaker
	}
	r.breakers.Store(resilience.NewBreakers(bc, r.onStateChange))
	return r, nil
}

func newCallPolicy(p resilience.Policy, timeout time.Duration, idempotent bool, codes []spi.Code) (*callPolicy, error) {
	rt, err := p.Build(resilience.Options{})
	if err != nil {
		return nil, err
	}
	return &callPolicy{
		timeout: timeout, idempotent: idempotent, retrier: rt,
		maxAttempts: rt.MaxAttempts(), backoff: rt.Backoff(),
		codes: append([]spi.Code(nil), codes...),
	}, nil
}

// policy returns the settings of method.
func (ps *policySet) policy(method string) *callPolicy {
	if len(ps.methods) != 0 {
		if p := ps.methods[method]; p != nil {
			return p
		}
	}
	return ps.def
}

// isIdempotent reports whether call may run twice: the method is declared
// idempotent, matches the policy's idempotent list, or the call carries
// kite-idempotent = "1" (or "true").
func (ps *policySet) isIdempotent(p *callPolicy, call *spi.Call) bool {
	if p.idempotent || p.retrier.IsIdempotent(call.Method) || ps.def.retrier.IsIdempotent(call.Method) {
		return true
	}
	v := call.Meta.Get(spi.MetaIdempotent)
	return v == "1" || v == "true"
}

// next decides whether attempt (1-based) of call, which failed with err,
// gets another one and how long to wait first. The budget is asked last
// because asking spends a token.
func (r *resilienceState) next(ctx context.Context, ps *policySet, p *callPolicy, call *spi.Call, attempt int, err error, sent bool) (time.Duration, bool) {
	if attempt >= p.maxAttempts {
		return 0, false
	}
	code := spi.CodeOf(err)
	if len(p.codes) != 0 && !slices.Contains(p.codes, code) {
		return 0, false
	}
	if !resilience.ShouldRetry(code, sent, sent && ps.isIdempotent(p, call)) {
		return 0, false
	}
	if ctx.Err() != nil {
		return 0, false
	}
	wait := p.backoff.Duration(attempt)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
		return 0, false
	}
	if !ps.budget.CanRetry() {
		r.budgetExhausted.Add(1)
		return 0, false
	}
	return wait, true
}

// retrying is the invoker under the client's filters: it runs the
// attempts of one unary or one-way call. Each retry excludes the
// instances already tried (PickInfo.Exclude), so it lands elsewhere when
// the balancer has anywhere else to go.
func (c *Client) retrying(ctx context.Context, call *spi.Call) error {
	r := c.res
	ps := r.pol.Load()
	p := ps.policy(call.Method)
	r.calls.Add(1)
	ps.budget.OnCall()
	var at attempt
	err := c.send(ctx, call, &at)
	r.attempts.Add(1)
	if err == nil || p.maxAttempts <= 1 {
		return unsent(ctx, err, at.sent)
	}
	base := excludedFrom(ctx)
	var tried []string
	for n := 1; ; n++ {
		wait, ok := r.next(ctx, ps, p, call, n, err, at.sent)
		if !ok {
			return unsent(ctx, err, at.sent)
		}
		if at.addr != "" && !slices.Contains(tried, at.addr) {
			tried = append(tried, at.addr)
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctxErr(ctx)
			}
		}
		r.retries.Add(1)
		if call.Trailer != nil {
			call.Trailer.Reset() // the failed attempt's trailer is not this one's
		}
		actx := context.WithValue(ctx, excludeKey{}, append(slices.Clip(base), tried...))
		at = attempt{}
		err = c.send(actx, call, &at)
		r.attempts.Add(1)
		if err == nil {
			return nil
		}
		c.log.Trace("call attempt failed", "method", call.Method, "attempt", n+1, "addr", at.addr, "sent", at.sent, "error", err)
	}
}

// unsent says so when the caller's context ended before the request left
// this process: "DeadlineExceeded: connecting to …: i/o timeout" for a
// 1 ns deadline reads like a network fault, when the deadline was simply
// too short to send the call at all.
func unsent(ctx context.Context, err error, sent bool) error {
	if err == nil || sent || ctx.Err() == nil {
		return err
	}
	var e *spi.Error
	if !errors.As(err, &e) || (e.Code != spi.DeadlineExceeded && e.Code != spi.Canceled) {
		return err
	}
	what := "the deadline expired"
	if e.Code == spi.Canceled {
		what = "the call was canceled"
	}
	return spi.WrapError(e.Code, err, "%s before the call was sent (%s)", what, e.Message)
}

// attempt is one try of a call: the instance it went to and what must be
// told how it ended.
type attempt struct {
	addr   string
	start  time.Time
	sent   bool
	done   func(spi.DoneInfo) // the balancer's, may be nil
	health func(success bool) // the endpoint breaker's; nil when the breaker was bypassed
}

// finish reports the attempt's outcome to the breaker and the balancer,
// once.
func (a *attempt) finish(di spi.DoneInfo) {
	if a.health != nil {
		a.health(!resilience.Failure(di.Err))
		a.health = nil
	}
	if a.done != nil {
		a.done(di)
		a.done = nil
	}
}

// pick chooses the instance of an attempt. Ejected endpoints are added to
// PickInfo.Exclude, so the balancer avoids them while it has others. A
// pick whose breaker refuses it (ejected meanwhile, or half-open with its
// probe already out) is retried once without it. When the balancer has
// nothing else to offer, the call goes to the ejected endpoint anyway,
// uncounted ("panic mode", as Envoy calls it): an ejected instance is a
// better bet than failing the call outright, and its breaker still
// reopens for probes when the ejection ends.
func (r *resilienceState) pick(ctx context.Context, p spi.Picker, call *spi.Call, at *attempt) error {
	info := spi.PickInfo{Method: call.Method, Key: spi.AffinityKey(ctx), Exclude: excludedFrom(ctx)}
	if r.open.Load() > 0 {
		info.Exclude = r.breakers.Load().AppendEjected(slices.Clip(info.Exclude))
	}
	for try := 0; ; try++ {
		res, err := p.Pick(ctx, info)
		if err != nil {
			return spi.AsError(err)
		}
		addr := res.Instance.Addr
		health, ok := r.breakers.Load().Get(addr).Allow()
		if ok || try > 0 || slices.Contains(info.Exclude, addr) {
			at.addr, at.done, at.health = addr, res.Done, health
			return nil
		}
		if res.Done != nil {
			res.Done(spi.DoneInfo{Err: errEjected})
		}
		info.Exclude = append(slices.Clip(info.Exclude), addr)
	}
}

func (r *resilienceState) onStateChange(addr string, from, to resilience.State) {
	switch {
	case to == resilience.Open:
		r.ejections.Add(1)
		r.log.Warn("endpoint ejected: its circuit breaker opened", "addr", addr, "from", from.String())
	case from == resilience.HalfOpen && to == resilience.Closed:
		r.restorations.Add(1)
		r.log.Info("endpoint restored: half-open probe succeeded", "addr", addr)
	}
	r.recount()
}

// recount sets open from the breakers' states. Serialised, so the last
// recount after the last transition wins.
func (r *resilienceState) recount() {
	r.countMu.Lock()
	defer r.countMu.Unlock()
	n := 0
	for _, s := range r.breakers.Load().Stats() {
		if s.State == resilience.Open {
			n++
		}
	}
	r.open.Store(int32(n))
}

// retain forgets the breakers of endpoints that left the instance list.
func (r *resilienceState) retain(ins []spi.Instance) {
	addrs := make([]string, len(ins))
	for i, in := range ins {
		addrs[i] = in.Addr
	}
	r.breakers.Load().Retain(addrs)
	r.recount()
}

// SetBreaker replaces the client's circuit breakers with a fresh set
// configured by cfg (kite.hcl's reload uses it). Every endpoint starts
// closed again: ejections and their doubling times belong to the old
// thresholds. Calls in flight report to the breakers they were picked
// with.
func (c *Client) SetBreaker(cfg resilience.BreakerConfig) {
	nb := resilience.NewBreakers(cfg, c.res.onStateChange)
	c.mu.Lock() // ordered with setInstances' retain
	addrs := make([]string, len(c.instances))
	for i, in := range c.instances {
		addrs[i] = in.Addr
	}
	nb.Retain(addrs) // the base of MaxEjectionPercent
	c.res.breakers.Store(nb)
	c.mu.Unlock()
	c.res.recount()
}

// Stats returns a snapshot of the client's retry and breaker counters.
func (c *Client) Stats() ClientStats {
	r := c.res
	s := ClientStats{
		Calls:           r.calls.Load(),
		Attempts:        r.attempts.Load(),
		Retries:         r.retries.Load(),
		BudgetExhausted: r.budgetExhausted.Load(),
		Ejections:       r.ejections.Load(),
		Restorations:    r.restorations.Load(),
		BudgetTokens:    r.pol.Load().budget.Tokens(),
		Breakers:        r.breakers.Load().Stats(),
	}
	s.Ejected = r.breakers.Load().AppendEjected(nil)
	slices.Sort(s.Ejected)
	return s
}
