package consul

import (
	"context"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// Backoff after a failed blocking query.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Watch reads service once (failing if Consul cannot answer) and then
// follows it with blocking health queries: ?index=<last X-Consul-Index>
// and ?wait=<wait>, so a change reaches the watcher as soon as Consul
// applies it, and an idle watch costs one request per wait.
func (r *Registry) Watch(ctx context.Context, service string) (spi.Watcher, error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	list, index, err := r.health(cctx, service, 0)
	cancel()
	if err != nil {
		return nil, wrap(err, "consul registry: watching %q", service)
	}
	r.remember(service, list)
	wctx, wcancel := context.WithCancel(r.ctx)
	w := &watcher{
		Feed:    registrykit.NewFeed(),
		r:       r,
		service: service,
		cancel:  wcancel,
		done:    make(chan struct{}),
		stopped: spi.Errorf(spi.Canceled, "consul registry: watch of %q stopped", service),
	}
	w.Publish(list)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		wcancel()
		return nil, spi.Errorf(spi.FailedPrecondition, "consul registry: closed")
	}
	r.watchers[w] = struct{}{}
	r.mu.Unlock()
	go w.run(wctx, index)
	return w, nil
}

// watcher runs the blocking-query loop of one service and publishes each
// changed set into its Feed, whose Next is the watcher's.
type watcher struct {
	*registrykit.Feed
	r       *Registry
	service string
	cancel  context.CancelFunc
	done    chan struct{}
	stopped error
}

// Stop ends the watch and waits for its goroutine.
func (w *watcher) Stop() {
	w.Close(w.stopped)
	w.cancel()
	<-w.done
	w.r.mu.Lock()
	delete(w.r.watchers, w)
	w.r.mu.Unlock()
}

func (w *watcher) run(ctx context.Context, index uint64) {
	defer close(w.done)
	defer w.Close(w.stopped)
	backoff := minBackoff
	for ctx.Err() == nil {
		// Consul's rules for blocking queries: an index must be at least 1,
		// and one that goes backwards (a restored or restarted server)
		// starts over.
		index = max(index, 1)
		start := time.Now()
		list, next, err := w.r.health(ctx, w.service, index)
		if err != nil {
			// The last snapshot stands while Consul is away.
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		if next <= index && time.Since(start) < w.r.wait/2 {
			// No progress, and no real wait on the server either: something
			// that does not block (a proxy, a server that lost its index)
			// must not turn the watch into a busy loop.
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, maxBackoff)
		} else {
			backoff = minBackoff
		}
		if next < index {
			next = 0
		}
		index = next
		w.r.remember(w.service, list)
		w.Publish(list)
	}
}
