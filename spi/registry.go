package spi

import (
	"context"
	"strconv"
	"strings"
)

// Instance is one serving endpoint of a service.
type Instance struct {
	// Service is the logical service name, e.g. "user".
	Service string `json:"service"`
	// Addr is where to dial, "host:port" or "unix:///path/to.sock".
	Addr string `json:"addr"`
	// Weight is the relative share of traffic; 0 means the default, 100.
	Weight int `json:"weight,omitempty"`
	// Version and Zone are free-form labels used by balancers and filters.
	Version string `json:"version,omitempty"`
	Zone    string `json:"zone,omitempty"`
	// Tags are free-form labels.
	Tags []string `json:"tags,omitempty"`
	// Metadata holds any other key/values the registry stores.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// DefaultWeight is the weight of an instance that declares none.
const DefaultWeight = 100

// EffectiveWeight returns Weight, or DefaultWeight when it is not positive.
func (in Instance) EffectiveWeight() int {
	if in.Weight <= 0 {
		return DefaultWeight
	}
	return in.Weight
}

// Key identifies an instance within its service.
func (in Instance) Key() string { return in.Service + "@" + in.Addr }

func (in Instance) String() string {
	var b strings.Builder
	b.WriteString(in.Service)
	b.WriteString("@")
	b.WriteString(in.Addr)
	b.WriteString(" w=")
	b.WriteString(strconv.Itoa(in.EffectiveWeight()))
	if in.Version != "" {
		b.WriteString(" v=" + in.Version)
	}
	if in.Zone != "" {
		b.WriteString(" zone=" + in.Zone)
	}
	return b.String()
}

// Registry is service discovery. Register/Deregister are used by servers;
// Resolve/Watch by clients. Implementations must be safe for concurrent
// use and keep registrations alive (sessions, leases, heartbeats) until
// Deregister or Close.
type Registry interface {
	// Register announces in. Registering the same instance again updates it.
	Register(ctx context.Context, in Instance) error
	// Deregister withdraws in. Withdrawing an unknown instance is not an error.
	Deregister(ctx context.Context, in Instance) error
	// Resolve returns the current instances of service (possibly none).
	Resolve(ctx context.Context, service string) ([]Instance, error)
	// Watch follows service: the first Next returns the current snapshot,
	// each later Next blocks until the set changes and returns the new
	// full snapshot.
	Watch(ctx context.Context, service string) (Watcher, error)
	// Close withdraws every registration made through this registry and
	// releases its resources.
	Close() error
}

// Watcher delivers snapshots of a service's instances.
type Watcher interface {
	// Next blocks until a snapshot is available or ctx is done. After Stop
	// it returns an error.
	Next(ctx context.Context) ([]Instance, error)
	// Stop ends the watch and releases its resources.
	Stop()
}
