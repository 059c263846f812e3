package spitest_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memBackend is a minimal correct registry store: the reference the
// suite is checked against, so a failure of the suite here is a bug in
// the suite.
type memBackend struct {
	mu      sync.Mutex
	entries map[string]map[string]memEntry // service → addr → entry
	changed chan struct{}                  // closed and replaced on every change
}

type memEntry struct {
	in    spi.Instance
	owner *memRegistry
}

func newMemBackend() *memBackend {
	return &memBackend{entries: map[string]map[string]memEntry{}, changed: make(chan struct{})}
}

// notifyLocked wakes every watcher; b.mu must be held.
func (b *memBackend) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *memBackend) snapshot(service string) ([]spi.Instance, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []spi.Instance
	for _, e := range b.entries[service] {
		in := e.in
		in.Tags = slices.Clone(in.Tags)
		in.Metadata = maps.Clone(in.Metadata)
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b spi.Instance) int { return strings.Compare(a.Addr, b.Addr) })
	return out, b.changed
}

type memRegistry struct {
	b      *memBackend
	closed chan struct{}
	once   sync.Once
}

var errClosed = errors.New("memregistry: closed")

func (r *memRegistry) Register(ctx context.Context, in spi.Instance) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	m := r.b.entries[in.Service]
	if m == nil {
		m = map[string]memEntry{}
		r.b.entries[in.Service] = m
	}
	in.Tags = slices.Clone(in.Tags)
	in.Metadata = maps.Clone(in.Metadata)
	m[in.Addr] = memEntry{in: in, owner: r}
	r.b.notifyLocked()
	return nil
}

func (r *memRegistry) Deregister(ctx context.Context, in spi.Instance) error {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	if _, ok := r.b.entries[in.Service][in.Addr]; ok {
		delete(r.b.entries[in.Service], in.Addr)
		r.b.notifyLocked()
	}
	return nil
}

func (r *memRegistry) Resolve(ctx context.Context, service string) ([]spi.Instance, error) {
	out, _ := r.b.snapshot(service)
	return out, nil
}

func (r *memRegistry) Watch(ctx context.Context, service string) (spi.Watcher, error) {
	return &memWatcher{r: r, service: service, stopped: make(chan struct{})}, nil
}

func (r *memRegistry) Close() error {
	r.once.Do(func() {
		close(r.closed)
		r.b.mu.Lock()
		defer r.b.mu.Unlock()
		for _, m := range r.b.entries {
			for addr, e := range m {
				if e.owner == r {
					delete(m, addr)
				}
			}
		}
		r.b.notifyLocked()
	})
	return nil
}

type memWatcher struct {
	r       *memRegistry
	service string
	stopped chan struct{}
	once    sync.Once
	mu      sync.Mutex // serialises Next
	last    []spi.Instance
	started bool
}

func (w *memWatcher) Next(ctx context.Context) ([]spi.Instance, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		select {
		case <-w.stopped:
			return nil, errors.New("memregistry: watch stopped")
		case <-w.r.closed:
			return nil, errClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		snap, changed := w.r.b.snapshot(w.service)
		if !w.started || !slices.EqualFunc(snap, w.last, func(a, b spi.Instance) bool {
			return a.Addr == b.Addr && a.Weight == b.Weight && a.Version == b.Version && a.Zone == b.Zone &&
				slices.Equal(a.Tags, b.Tags) && maps.Equal(a.Metadata, b.Metadata)
		}) {
			w.started, w.last = true, snap
			return snap, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.stopped:
		case <-w.r.closed:
		}
	}
}

func (w *memWatcher) Stop() { w.once.Do(func() { close(w.stopped) }) }

func TestRegistryReference(t *testing.T) {
	b := newMemBackend()
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		return &memRegistry{b: b, closed: make(chan struct{})}
	})
}
