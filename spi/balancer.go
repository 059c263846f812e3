package spi

import (
	"context"
	"time"
)

// Balancer turns an instance list into a Picker. Build is called on every
// update of the list (off the hot path); the returned Picker is an
// immutable snapshot used by calls until the next Build, so picking needs
// no lock on the list. This follows grpc-go's balancer/picker split.
type Balancer interface {
	// Name is the catalog name, e.g. "weighted", "round_robin".
	Name() string
	// Build returns a picker over instances. instances may be empty; the
	// picker then returns ErrNoInstance. Build must not retain or modify
	// the slice after it returns except by copying it.
	Build(instances []Instance) Picker
}

// Picker chooses an instance for one call. It must be safe for concurrent
// use and cheap: it runs on every call.
type Picker interface {
	Pick(ctx context.Context, info PickInfo) (PickResult, error)
}

// PickInfo describes the call being placed.
type PickInfo struct {
	// Method is "Service.Method".
	Method string
	// Key is the request's affinity key for hash-based balancers ("" if none).
	Key string
	// Exclude lists instance addresses to avoid (e.g. ones a retry already
	// tried); a picker honours it when another instance is available.
	Exclude []string
}

// PickResult is the picker's choice.
type PickResult struct {
	// Instance is the chosen endpoint.
	Instance Instance
	// Done, if not nil, is called once when the call finishes; balancers
	// that track load (least-loaded, latency-aware) use it.
	Done func(DoneInfo)
}

// DoneInfo reports how a picked call went.
type DoneInfo struct {
	Err      error
	Duration time.Duration
	// Sent reports whether the request reached the wire.
	Sent bool
}

// ErrNoInstance is returned by a picker that has no instance to offer.
var ErrNoInstance = &Error{Code: Unavailable, Message: "no instance available"}

type affinityKey struct{}

// WithAffinityKey returns a context whose calls carry key for hash-based
// balancing (PickInfo.Key).
func WithAffinityKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, affinityKey{}, key)
}

// AffinityKey returns the key set by WithAffinityKey, or "".
func AffinityKey(ctx context.Context) string {
	k, _ := ctx.Value(affinityKey{}).(string)
	return k
}
