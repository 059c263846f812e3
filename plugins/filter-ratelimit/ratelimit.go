package ratelimitfilter

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/spi"
)

// Per says what a bucket is kept for.
type Per string

// Bucket keys.
const (
	PerGlobal Per = "global"
	PerMethod Per = "method"
	PerPeer   Per = "peer"
)

// TrailerRetryAfter is the response metadata key carrying how long a
// refused caller should wait, as a Go duration ("40ms").
const TrailerRetryAfter = "retry-after"

// DefaultMaxBuckets bounds the keyed buckets kept by default.
const DefaultMaxBuckets = 10000

const maxShards = 32

// Options configure a Filter built in code.
type Options struct {
	// Rate is the sustained calls per second per bucket; required.
	Rate float64
	// Burst is the bucket size: calls allowed at once after a quiet spell.
	// Default max(1, ceil(Rate)).
	Burst int
	// Per selects the bucket key; default PerGlobal.
	Per Per
	// MaxBuckets bounds keyed buckets; default DefaultMaxBuckets.
	MaxBuckets int
	// Exempt lists methods never limited: "Health.Check", "Health.*".
	Exempt []string
	// Now is the clock; default time.Now. Tests inject their own.
	Now func() time.Time
}

// Filter limits call rates. Build it with NewFilter.
type Filter struct {
	rate      float64
	burst     int
	per       Per
	interval  int64 // ns between tokens
	tolerance int64 // burst × interval: how far ahead the arrival time may run
	now       func() int64
	exempt    []string

	global      bucket
	seed        maphash.Seed
	shards      []shard
	maxPerShard int
}

type bucket struct {
	// tat is the theoretical arrival time, in ns since the filter's epoch:
	// the instant the bucket will be full again. tat <= now means full.
	tat atomic.Int64
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*bucket
	_  [64]byte // keep neighbouring shards' locks off one cache line
}

// NewFilter builds a filter from o.
func NewFilter(o Options) (*Filter, error) {
	if !(o.Rate > 0) || math.IsInf(o.Rate, 0) {
		return nil, fmt.Errorf("rate must be a positive number of calls per second (got %g)", o.Rate)
	}
	if o.Burst == 0 {
		o.Burst = int(math.Max(1, math.Ceil(o.Rate)))
	}
	if o.Burst < 1 {
		return nil, fmt.Errorf("burst must be at least 1 (got %d)", o.Burst)
	}
	switch o.Per {
	case "":
		o.Per = PerGlobal
	case PerGlobal, PerMethod, PerPeer:
	default:
		return nil, fmt.Errorf("per %q: want \"global\", \"method\" or \"peer\"", o.Per)
	}
	if o.MaxBuckets == 0 {
		o.MaxBuckets = DefaultMaxBuckets
	}
	if o.MaxBuckets < 1 {
		return nil, fmt.Errorf("max_buckets must be at least 1 (got %d)", o.MaxBuckets)
	}
	for _, e := range o.Exempt {
		if e == "" || (strings.Contains(e, "*") && e != "*" && (!strings.HasSuffix(e, ".*") || strings.Count(e, "*") > 1)) {
			return nil, fmt.Errorf("exempt %q: use \"Svc.Method\", \"Svc.*\" or \"*\"", e)
		}
	}
	clock := o.Now
	if clock == nil {
		clock = time.Now
	}
	epoch := clock() // with time.Now, Sub below uses the monotonic clock
	interval := int64(math.Max(1, math.Round(float64(time.Second)/o.Rate)))
	if int64(o.Burst) > math.MaxInt64/4/interval {
		return nil, fmt.Errorf("burst %d at %g/s spans more time than the clock can hold", o.Burst, o.Rate)
	}
	f := &Filter{
		rate: o.Rate, burst: o.Burst, per: o.Per,
		interval: interval, tolerance: interval * int64(o.Burst),
		now:    func() int64 { return int64(clock().Sub(epoch)) },
		exempt: o.Exempt,
		seed:   maphash.MakeSeed(),
	}
	if f.per != PerGlobal {
		n := maxShards
		for n > 1 && n > o.MaxBuckets {
			n /= 2
		}
		f.shards = make([]shard, n)
		for i := range f.shards {
			f.shards[i].m = make(map[string]*bucket)
		}
		f.maxPerShard = o.MaxBuckets / n
	}
	return f, nil
}

// MetadataOnly implements spi.MetadataFilter: it limits by method and peer, so the server refuses a
// call over the limit before decompressing or decoding its body.
func (*Filter) MetadataOnly() {}

// Wrap implements spi.Filter.
func (f *Filter) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		if len(f.exempt) > 0 && f.isExempt(call.Method) {
			return next(ctx, call)
		}
		now := f.now()
		var key string
		b := &f.global
		switch f.per {
		case PerMethod:
			key = call.Method
			b = f.bucket(key, now)
		case PerPeer:
			key = peerKey(call.Peer)
			b = f.bucket(key, now)
		}
		if wait := f.take(b, now); wait > 0 {
			return f.refuse(call, key, wait)
		}
		return next(ctx, call)
	}
}

// take takes a token from b at now; it returns 0 on success or how long
// until a token is there.
func (f *Filter) take(b *bucket, now int64) time.Duration {
	for {
		tat := b.tat.Load()
		next := max(tat, now) + f.interval
		if ahead := next - now; ahead > f.tolerance {
			return time.Duration(ahead - f.tolerance)
		}
		if b.tat.CompareAndSwap(tat, next) {
			return 0
		}
	}
}

func (f *Filter) refuse(call *spi.Call, key string, wait time.Duration) error {
	hint := roundUp(wait)
	if call.Side == spi.ServerSide {
		if call.Trailer == nil {
			call.Trailer = &spi.Metadata{}
		}
		call.Trailer.Set(TrailerRetryAfter, hint.String())
	}
	scope := "the service"
	switch f.per {
	case PerMethod:
		scope = key
	case PerPeer:
		scope = "peer " + key
		if key == "" {
			scope = "an unknown peer"
		}
	}
	return spi.Errorf(spi.ResourceExhausted, "rate limit of %g/s (burst %d) exceeded for %s; retry after %s", f.rate, f.burst, scope, hint)
}

// roundUp rounds a wait up — never tell a caller to come back too early —
// to the millisecond, or to the second beyond ten seconds, so hints read
// "40ms" or "16m40s" rather than "16m39.913s".
func roundUp(d time.Duration) time.Duration {
	unit := time.Millisecond
	if d > 10*time.Second {
		unit = time.Second
	}
	if d <= unit {
		return d
	}
	if r := d.Truncate(unit); r < d {
		return r + unit
	}
	return d
}

// bucket returns key's bucket, creating it (and making room) if needed.
func (f *Filter) bucket(key string, now int64) *bucket {
	sh := &f.shards[maphash.String(f.seed, key)%uint64(len(f.shards))]
	sh.mu.RLock()
	b := sh.m[key]
	sh.mu.RUnlock()
	if b != nil {
		return b
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if b = sh.m[key]; b != nil {
		return b
	}
	if len(sh.m) >= f.maxPerShard {
		sh.evict(now)
	}
	b = &bucket{}
	sh.m[key] = b
	return b
}

// evict drops every full bucket, or else the one nearest to full. A caller
// that fetched a dropped bucket just before may take one last token from
// it: an imprecision of one call, not a leak.
func (sh *shard) evict(now int64) {
	var victim string
	oldest := int64(math.MaxInt64)
	freed := false
	for k, b := range sh.m {
		tat := b.tat.Load()
		if tat <= now {
			delete(sh.m, k)
			freed = true
		} else if tat < oldest {
			oldest, victim = tat, k
		}
	}
	if !freed {
		delete(sh.m, victim)
	}
}

// Buckets returns how many keyed buckets are held (for tests and status
// pages).
func (f *Filter) Buckets() int {
	n := 0
	for i := range f.shards {
		sh := &f.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

func (f *Filter) isExempt(method string) bool {
	for _, e := range f.exempt {
		if e == method || e == "*" || (strings.HasSuffix(e, ".*") && strings.HasPrefix(method, e[:len(e)-1])) {
			return true
		}
	}
	return false
}

// peerKey is the caller's host: its port changes with every connection.
func peerKey(peer string) string {
	if host, _, err := net.SplitHostPort(peer); err == nil {
		return host
	}
	return peer
}

type config struct {
	Rate       *float64 `json:"rate"`
	Burst      *float64 `json:"burst"`
	Per        string   `json:"per"`
	MaxBuckets *float64 `json:"max_buckets"`
	Exempt     []string `json:"exempt"`
}

// New builds the filter from its kite.hcl block.
func New(cfg spi.Config) (any, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	if c.Rate == nil {
		return nil, errors.New("rate is required (calls per second)")
	}
	o := Options{Rate: *c.Rate, Per: Per(c.Per), Exempt: c.Exempt}
	var err error
	if o.Burst, err = whole("burst", c.Burst); err != nil {
		return nil, err
	}
	if o.MaxBuckets, err = whole("max_buckets", c.MaxBuckets); err != nil {
		return nil, err
	}
	return NewFilter(o)
}

// whole reads an optional whole number ≥ 1; absent is 0 (the default).
func whole(name string, v *float64) (int, error) {
	if v == nil {
		return 0, nil
	}
	if *v != math.Trunc(*v) || *v < 1 || *v > math.MaxInt32 {
		return 0, fmt.Errorf("%s must be a whole number of at least 1 (got %g)", name, *v)
	}
	return int(*v), nil
}

func init() {
	spi.Register(spi.Entry{
		Kind: spi.KindFilter, Name: "ratelimit", Version: "1.0.0",
		Doc: "token-bucket rate limits, global or per method or peer; ResourceExhausted beyond",
		Schema: spi.Schema{
			{Name: "rate", Type: spi.TypeNumber, Required: true, Doc: "calls per second per bucket"},
			{Name: "burst", Type: spi.TypeNumber, Doc: "bucket size (default ceil(rate), at least 1)"},
			{Name: "per", Type: spi.TypeString, Doc: `"global" (default), "method" or "peer"`},
			{Name: "max_buckets", Type: spi.TypeNumber, Doc: "bound on per-method/per-peer buckets (default 10000)"},
			{Name: "exempt", Type: spi.TypeStringList, Doc: `methods never limited: "Health.Check", "Health.*"`},
		},
		New: New,
	})
}
