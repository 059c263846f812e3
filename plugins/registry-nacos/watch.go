package nacos

import (
	"context"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// Watch lists service and then polls it. The first Next returns the
// listed snapshot; later ones return each changed set. The poll period is
// poll_interval, or else the cacheMillis of the server's last answer. If
// the first list fails, Watch fails; later failures keep the last
// snapshot.
func (r *Registry) Watch(ctx context.Context, service string) (spi.Watcher, error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	list, resp, err := r.list(ctx, service)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(r.ctx)
	w := &watcher{
		Feed:    registrykit.NewFeed(),
		r:       r,
		cancel:  cancel,
		done:    make(chan struct{}),
		service: service,
		stopped: spi.Errorf(spi.Canceled, "nacos registry: watch of %q stopped", service),
	}
	w.Publish(list)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel()
		return nil, spi.Errorf(spi.FailedPrecondition, "nacos registry: closed")
	}
	r.watchers[w] = struct{}{}
	r.mu.Unlock()
	go w.run(wctx, resp)
	return w, nil
}

// watcher polls one service and publishes each changed set into the
// Feed, whose Next is the watcher's. The Feed compares the converted
// instances rather than Nacos's checksum: a checksum also moves for
// changes Kite filters out (an unhealthy instance's state), and not
// every server version fills it.
type watcher struct {
	*registrykit.Feed
	r       *Registry
	service string
	cancel  context.CancelFunc
	done    chan struct{}
	stopped error // what Next returns after Stop
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

func (w *watcher) run(ctx context.Context, last listResponse) {
	defer close(w.done)
	defer w.Close(w.stopped)
	interval := w.r.interval(last)
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		list, resp, err := w.r.list(ctx, w.service)
		if err == nil {
			w.Publish(list)
			interval = w.r.interval(resp)
		}
		// On error the last snapshot stands: callers keep the instances
		// they know while Nacos is away.
		t.Reset(interval)
	}
}

// interval is the polling period after an answer.
func (r *Registry) interval(resp listResponse) time.Duration {
	if r.pollInterval > 0 {
		return r.pollInterval
	}
	if resp.CacheMillis > 0 {
		return max(time.Duration(resp.CacheMillis)*time.Millisecond, minPoll)
	}
	return defaultPoll
}
