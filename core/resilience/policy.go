package resilience

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kiterpc/kite/spi"
)

// Policy defaults.
const (
	DefaultMaxAttempts         = 3
	DefaultBackoff             = "10ms..1s"
	DefaultBudgetRatio         = 0.1
	DefaultMinRetriesPerSecond = 10
)

// Policy is a client's retry block in kite.hcl:
//
//	retry {
//	  max_attempts = 3
//	  backoff      = "10ms..1s"
//	  budget       = 0.1
//	  idempotent   = ["User.Get", "Catalog.*"]
//	}
//
// Zero fields take the defaults above; max_attempts = 1 turns retries off.
type Policy struct {
	// MaxAttempts is the most attempts of one call, the first included.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Backoff is "min..max" (see ParseBackoff).
	Backoff string `json:"backoff,omitempty"`
	// Budget is the retry budget's ratio: retries earned per call.
	Budget float64 `json:"budget,omitempty"`
	// MinRetriesPerSecond is the budget's floor.
	MinRetriesPerSecond float64 `json:"min_retries_per_second,omitempty"`
	// Idempotent lists the methods that may be retried after the request
	// was sent: "Service.Method", "Service.*" or "*". A call can also be
	// marked idempotent on its own (metadata spi.MetaIdempotent = "1").
	Idempotent []string `json:"idempotent,omitempty"`
}

// Validate checks p without building anything.
func (p Policy) Validate() error {
	if p.MaxAttempts < 0 {
		return fmt.Errorf("retry: max_attempts must be at least 1, got %d", p.MaxAttempts)
	}
	if p.Budget < 0 {
		return fmt.Errorf("retry: budget must not be negative, got %v", p.Budget)
	}
	if p.MinRetriesPerSecond < 0 {
		return fmt.Errorf("retry: min_retries_per_second must not be negative, got %v", p.MinRetriesPerSecond)
	}
	if p.Backoff != "" {
		if _, err := ParseBackoff(p.Backoff); err != nil {
			return fmt.Errorf("retry: %w", err)
		}
	}
	for _, m := range p.Idempotent {
		if m != "*" && (!strings.Contains(m, ".") || strings.Contains(strings.TrimSuffix(m, "*"), "*")) {
			return fmt.Errorf("retry: idempotent method %q: want \"Service.Method\", \"Service.*\" or \"*\"", m)
		}
	}
	return nil
}

// ShouldRetry is the retry rule of this package (see the package doc),
// independent of attempts, budget and deadline.
func (Policy) ShouldRetry(code spi.Code, sent, idempotent bool) bool {
	return ShouldRetry(code, sent, idempotent)
}

// ShouldRetry reports whether a call attempt that failed with code may be
// tried again: sent tells whether any of the request reached the wire,
// idempotent whether the method may safely run twice.
//
//   - Not sent: the server cannot have acted on it, so Unavailable (no
//     connection, connection refused or closed, GOAWAY before the write),
//     ResourceExhausted (a local or admission limit) and DeadlineExceeded
//     (a per-attempt timeout such as connect) are retried.
//   - Sent, idempotent: Unavailable (the connection broke, the server is
//     draining) and DeadlineExceeded of the attempt are retried, since
//     running the method again is harmless.
//   - Sent, not idempotent: never; the server may have done the work.
//   - Every other code is an answer, not an accident: never retried.
//     Canceled in particular means the caller gave up.
func ShouldRetry(code spi.Code, sent, idempotent bool) bool {
	switch code {
	case spi.Unavailable, spi.DeadlineExceeded:
		return !sent || idempotent
	case spi.ResourceExhausted:
		return !sent
	}
	return false
}

// Failure reports whether a call's error counts against the endpoint's
// health (for a Breaker): errors that point at the server or the path to
// it, not answers about the request. nil is a success.
func Failure(err error) bool {
	switch spi.CodeOf(err) {
	case spi.Unavailable, spi.DeadlineExceeded, spi.ResourceExhausted, spi.Internal, spi.Unknown, spi.DataLoss:
		return true
	}
	return false
}

// Options inject a clock and a random source into what Policy.Build makes.
type Options struct {
	Now  func() time.Time
	Rand func() float64
}

// Retrier applies a Policy: the retry rule, the attempt limit, the
// backoff and a retry budget shared by all calls of one client. It is
// safe for concurrent use.
type Retrier struct {
	maxAttempts int
	backoff     Backoff
	budget      *RetryBudget
	idemAll     bool
	idemExact   map[string]bool
	idemService []string // "Service." prefixes
	now         func() time.Time
}

// Resolved returns p with its zero fields set to the defaults, as Build
// runs it.
func (p Policy) Resolved() Policy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.Backoff == "" {
		p.Backoff = DefaultBackoff
	}
	if p.Budget == 0 {
		p.Budget = DefaultBudgetRatio
	}
	if p.MinRetriesPerSecond == 0 {
		p.MinRetriesPerSecond = DefaultMinRetriesPerSecond
	}
	return p
}

// Build validates p, fills in defaults and returns its Retrier.
func (p Policy) Build(opts Options) (*Retrier, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p = p.Resolved()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	bo, _ := ParseBackoff(p.Backoff) // validated above
	bo.Rand = opts.Rand
	r := &Retrier{
		maxAttempts: p.MaxAttempts,
		backoff:     bo,
		budget:      NewRetryBudget(RetryBudgetOptions{Ratio: p.Budget, MinPerSecond: p.MinRetriesPerSecond, Now: opts.Now}),
		idemExact:   make(map[string]bool),
		now:         opts.Now,
	}
	for _, m := range p.Idempotent {
		switch {
		case m == "*":
			r.idemAll = true
		case strings.HasSuffix(m, ".*"):
			r.idemService = append(r.idemService, strings.TrimSuffix(m, "*"))
		default:
			r.idemExact[m] = true
		}
	}
	return r, nil
}

// MaxAttempts returns the attempt limit.
func (r *Retrier) MaxAttempts() int { return r.maxAttempts }

// Budget returns the retry budget, for metrics.
func (r *Retrier) Budget() *RetryBudget { return r.budget }

// Backoff returns the backoff in use.
func (r *Retrier) Backoff() Backoff { return r.backoff }

// IsIdempotent reports whether the policy declares method
// ("Service.Method") idempotent.
func (r *Retrier) IsIdempotent(method string) bool {
	if r.idemAll || r.idemExact[method] {
		return true
	}
	for _, prefix := range r.idemService {
		if strings.HasPrefix(method, prefix) {
			return true
		}
	}
	return false
}

// OnCall records a new call (not a retry) with the budget. Call it once
// per call, before its first attempt.
func (r *Retrier) OnCall() { r.budget.OnCall() }

// Next decides whether a call whose attempt number attempt (1 for the
// first) just failed with err gets another attempt, and how long to wait
// before it. sent tells whether the request reached the wire; idempotent
// whether the method or the call is marked idempotent. The checks run
// cheapest first and the budget last, since asking it spends a token:
// the attempt limit, the rule (ShouldRetry), the caller's context (done,
// or a deadline that would pass during the wait), then the budget.
func (r *Retrier) Next(ctx context.Context, attempt int, err error, sent, idempotent bool) (time.Duration, bool) {
	if err == nil || attempt >= r.maxAttempts {
		return 0, false
	}
	if !ShouldRetry(spi.CodeOf(err), sent, idempotent) {
		return 0, false
	}
	if ctx.Err() != nil {
		return 0, false
	}
	wait := r.backoff.Duration(attempt)
	if dl, ok := ctx.Deadline(); ok && dl.Sub(r.now()) <= wait {
		return 0, false
	}
	if !r.budget.CanRetry() {
		return 0, false
	}
	return wait, true
}
