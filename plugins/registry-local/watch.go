package local

import (
	"context"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// Watch implements spi.Registry. The watch reads the service directory
// from inside Next, every poll interval or at once after a change made
// through this registry, so it holds no goroutine: a watcher nobody reads
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
	read := func() ([]spi.Instance, <-chan struct{}, error) {
		// Take the wake channel before reading, so a local change made
		// after the read is never missed.
		wake := r.wakeChan()
		snap, err := r.read(service)
		return snap, wake, err
	}
	// A directory that cannot be read for a moment keeps the last
	// snapshot: callers keep their instances.
	return registrykit.NewPollWatcher(read, registrykit.PollOptions{
		Interval:   r.poll,
		Closed:     r.done,
		ErrClosed:  errClosed,
		ErrStopped: errStopped,
	}), nil
}

var errStopped = spi.Errorf(spi.Canceled, "local registry: watch stopped")
