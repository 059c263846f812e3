package nacos

import (
	"context"
	"reflect"
	"sync"
	"time"

	"github.com/kiterpc/kite/spi"
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
		r:       r,
		service: service,
		cancel:  cancel,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	w.publish(list)
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

type watcher struct {
	r       *Registry
	service string
	cancel  context.CancelFunc
	done    chan struct{}

	mu        sync.Mutex
	snapshot  []spi.Instance
	version   uint64
	delivered uint64
	changed   chan struct{}
	stopped   bool
}

// publish installs list if it differs from the current snapshot. The
// comparison is on the converted instances rather than on Nacos's
// checksum: a checksum also moves for changes Kite filters out (an
// unhealthy instance's state), and not every server version fills it.
func (w *watcher) publish(list []spi.Instance) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.version > 0 && sameList(w.snapshot, list) {
		return
	}
	w.snapshot = list
	w.version++
	close(w.changed)
	w.changed = make(chan struct{})
}

func sameList(a, b []spi.Instance) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// Next returns the newest snapshot not yet returned, waiting for one.
func (w *watcher) Next(ctx context.Context) ([]spi.Instance, error) {
	for {
		w.mu.Lock()
		if w.stopped {
			w.mu.Unlock()
			return nil, spi.Errorf(spi.Canceled, "nacos registry: watch of %q stopped", w.service)
		}
		if w.version != w.delivered {
			w.delivered = w.version
			out := cloneInstances(w.snapshot)
			w.mu.Unlock()
			if out == nil {
				out = []spi.Instance{}
			}
			return out, nil
		}
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.done:
		case <-changed:
		}
	}
}

// Stop ends the watch and waits for its goroutine.
func (w *watcher) Stop() {
	w.mu.Lock()
	already := w.stopped
	w.stopped = true
	w.mu.Unlock()
	w.cancel()
	<-w.done
	if !already {
		w.r.mu.Lock()
		delete(w.r.watchers, w)
		w.r.mu.Unlock()
	}
}

func (w *watcher) run(ctx context.Context, last listResponse) {
	defer close(w.done)
	defer func() {
		w.mu.Lock()
		w.stopped = true
		w.mu.Unlock()
	}()
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
			w.publish(list)
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
