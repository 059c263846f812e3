package resilience

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// tokenUnit is the fixed-point scale of budget tokens: one retry costs
// tokenUnit, a call with ratio 0.1 deposits tokenUnit/10. Decimal, so the
// ratios people write (0.1, 0.2, 0.05) are exact.
const tokenUnit = 1_000_000

// RetryBudgetOptions configure a RetryBudget.
type RetryBudgetOptions struct {
	// Ratio is the number of retries each call earns, e.g. 0.1: over time
	// at most 10% more attempts than calls.
	Ratio float64
	// MinPerSecond is a floor of retries per second that accrues whatever
	// the call rate, so a client with little traffic can still retry.
	MinPerSecond float64
	// MaxTokens caps the saved-up retries, so a long healthy period does
	// not buy a storm when things break. 0 means
	// max(10, 10·MinPerSecond): ten seconds' worth of the floor.
	MaxTokens float64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// RetryBudget limits retries to a share of calls, the way Finagle's and
// Envoy's retry budgets do: each call deposits Ratio tokens (OnCall), each
// retry withdraws one (CanRetry), and MinPerSecond tokens accrue per
// second on top. When a dependency fails completely, retries therefore
// add at most Ratio·calls + MinPerSecond·seconds attempts instead of
// multiplying the load by the attempt limit, which is what turns a
// brown-out into an outage.
//
// The first second of the floor is credited up front, so a client that
// has just started can retry at once; the floor then accrues from the
// end of that second. Over T ≥ 1 s, the retries granted are at most
// Ratio·calls + MinPerSecond·T.
//
// OnCall is lock-free (one compare-and-swap); CanRetry, which runs only
// for failed calls, takes a short lock to accrue the floor.
type RetryBudget struct {
	deposit  int64 // per call, in token units
	capacity int64
	perNano  float64 // floor accrual in token units per nanosecond
	now      func() time.Time

	balance atomic.Int64

	mu   sync.Mutex
	last time.Time // floor accrued up to here
}

// NewRetryBudget returns a budget with opts.
func NewRetryBudget(opts RetryBudgetOptions) *RetryBudget {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	capTokens := opts.MaxTokens
	if capTokens <= 0 {
		capTokens = max(10, 10*opts.MinPerSecond)
	}
	b := &RetryBudget{
		deposit:  int64(math.Round(max(opts.Ratio, 0) * tokenUnit)),
		capacity: int64(math.Round(capTokens * tokenUnit)),
		perNano:  max(opts.MinPerSecond, 0) * tokenUnit / 1e9,
		now:      opts.Now,
	}
	b.balance.Store(min(b.capacity, int64(math.Round(max(opts.MinPerSecond, 0)*tokenUnit))))
	b.last = opts.Now().Add(time.Second)
	return b
}

// OnCall records a call (not a retry): it earns Ratio retries.
func (b *RetryBudget) OnCall() { b.add(b.deposit) }

// CanRetry withdraws one retry from the budget and reports whether there
// was one. Call it once per retry about to be made, after every other
// reason not to retry has been checked.
func (b *RetryBudget) CanRetry() bool {
	if b.perNano > 0 {
		b.accrue()
	}
	for {
		cur := b.balance.Load()
		if cur < tokenUnit {
			return false
		}
		if b.balance.CompareAndSwap(cur, cur-tokenUnit) {
			return true
		}
	}
}

// Tokens returns the retries currently available, for metrics.
func (b *RetryBudget) Tokens() float64 { return float64(b.balance.Load()) / tokenUnit }

// accrue adds the floor earned since the last accrual. Only whole token
// units are added and the time they correspond to is consumed, so
// frequent calls lose nothing to rounding.
func (b *RetryBudget) accrue() {
	b.mu.Lock()
	defer b.mu.Unlock()
	elapsed := b.now().Sub(b.last)
	if elapsed <= 0 {
		return
	}
	units := math.Floor(float64(elapsed) * b.perNano)
	if units < 1 {
		return
	}
	b.last = b.last.Add(time.Duration(math.Ceil(units / b.perNano)))
	b.add(int64(min(units, float64(b.capacity))))
}

func (b *RetryBudget) add(n int64) {
	if n <= 0 {
		return
	}
	for {
		cur := b.balance.Load()
		next := min(cur+n, b.capacity)
		if next <= cur || b.balance.CompareAndSwap(cur, next) {
			return
		}
	}
}
