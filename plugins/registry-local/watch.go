package local

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/kiterpc/kite/spi"
)

// Watch implements spi.Registry. The watch polls the service directory
// from inside Next, so it holds no goroutine: a watcher nobody reads
// costs nothing.
func (r *Registry) Watch(ctx context.Context, service string) (spi.Watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := r.serviceDir(service); err != nil {
		return nil, err
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	return &watcher{r: r, service: service, stop: make(chan struct{})}, nil
}

type watcher struct {
	r        *Registry
	service  string
	stop     chan struct{}
	stopOnce sync.Once

	mu        sync.Mutex // serialises Next; guards last and delivered
	last      []spi.Instance
	delivered bool
}

var errStopped = spi.Errorf(spi.Canceled, "local registry: watch stopped")

// Next implements spi.Watcher. A directory that cannot be read for a
// moment keeps the last snapshot: callers keep their instances.
func (w *watcher) Next(ctx context.Context) ([]spi.Instance, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-w.stop:
			return nil, errStopped
		case <-w.r.done:
			return nil, errClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Take the wake channel before reading, so a local change made
		// after the read is never missed.
		wake := w.r.wakeChan()
		snap, err := w.r.read(w.service)
		if err == nil && (!w.delivered || !equal(snap, w.last)) {
			w.last, w.delivered = snap, true
			return cloneAll(snap), nil
		}
		if timer == nil {
			timer = time.NewTimer(w.r.poll)
		} else {
			timer.Reset(w.r.poll)
		}
		select {
		case <-timer.C:
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.stop:
		case <-w.r.done:
		}
	}
}

// Stop implements spi.Watcher.
func (w *watcher) Stop() { w.stopOnce.Do(func() { close(w.stop) }) }

func cloneAll(ins []spi.Instance) []spi.Instance {
	out := make([]spi.Instance, len(ins))
	for i, in := range ins {
		out[i] = clone(in)
	}
	return out
}

// equal compares two address-sorted snapshots field by field.
func equal(a, b []spi.Instance) bool {
	return slices.EqualFunc(a, b, func(x, y spi.Instance) bool {
		return x.Service == y.Service && x.Addr == y.Addr && x.Weight == y.Weight &&
			x.Version == y.Version && x.Zone == y.Zone && slices.Equal(x.Tags, y.Tags) &&
			maps.Equal(x.Metadata, y.Metadata)
	})
}
