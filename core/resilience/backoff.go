package resilience

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Backoff computes the wait before a retry: exponential growth from Min
// by Multiplier per attempt, capped at Max, with full jitter over the
// range [Min, ceiling]. Jitter spreads the retries of many clients that
// failed together (a server restart) so that they do not return together;
// keeping Min as the floor guarantees some pause even on an unlucky draw.
//
// The zero value retries at once. A Backoff is a value; it is safe for
// concurrent use when Rand is.
type Backoff struct {
	// Min is the shortest wait and the base of the growth.
	Min time.Duration
	// Max caps the wait; a Max below Min is taken as Min.
	Max time.Duration
	// Multiplier is the growth per attempt; values below 1 mean 2.
	Multiplier float64
	// Rand returns numbers in [0, 1); nil means math/rand/v2.Float64.
	// Tests inject a fixed source.
	Rand func() float64
}

// Duration returns the wait before retry number attempt (1 for the first
// retry, that is the second attempt of a call). It is uniformly
// distributed in [Min, min(Max, Min·Multiplier^attempt)], so the first
// retry waits between Min and 2·Min with the default multiplier. attempt
// ≤ 0 returns 0.
func (b Backoff) Duration(attempt int) time.Duration {
	if attempt <= 0 || b.Min <= 0 && b.Max <= 0 {
		return 0
	}
	lo := float64(max(b.Min, 0))
	hi := float64(max(b.Max, b.Min))
	mult := b.Multiplier
	if mult < 1 {
		mult = 2
	}
	ceiling := lo * math.Pow(mult, float64(attempt))
	if lo == 0 {
		// No base to grow from: jitter over the whole range.
		ceiling = hi
	}
	if math.IsInf(ceiling, 0) || math.IsNaN(ceiling) || ceiling > hi {
		ceiling = hi
	}
	r := b.Rand
	if r == nil {
		r = rand.Float64
	}
	return time.Duration(lo + r()*(ceiling-lo))
}

// ParseBackoff parses "min..max" (e.g. "10ms..1s") into a Backoff with the
// default multiplier. A single duration ("100ms") is a fixed wait.
func ParseBackoff(s string) (Backoff, error) {
	minS, maxS, isRange := strings.Cut(strings.TrimSpace(s), "..")
	if !isRange {
		maxS = minS
	}
	lo, err := time.ParseDuration(strings.TrimSpace(minS))
	if err != nil {
		return Backoff{}, fmt.Errorf("backoff %q: want \"min..max\" such as \"10ms..1s\": %w", s, err)
	}
	hi, err := time.ParseDuration(strings.TrimSpace(maxS))
	if err != nil {
		return Backoff{}, fmt.Errorf("backoff %q: want \"min..max\" such as \"10ms..1s\": %w", s, err)
	}
	if lo < 0 || hi < lo {
		return Backoff{}, fmt.Errorf("backoff %q: want 0 ≤ min ≤ max", s)
	}
	return Backoff{Min: lo, Max: hi}, nil
}

// String formats b the way ParseBackoff reads it.
func (b Backoff) String() string { return b.Min.String() + ".." + b.Max.String() }
