package etcd

import (
	"context"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Watch lists service and then follows its prefix. The first Next returns
// the listed snapshot; later ones return each changed set. If the initial
// list fails, Watch fails; later outages keep the last snapshot.
func (r *Registry) Watch(ctx context.Context, service string) (spi.Watcher, error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	list, rev, err := r.list(ctx, service)
	if err != nil {
		return nil, err
	}
	return r.startWatcher(service, list, rev)
}

// startWatcher hands out list first and follows the service from rev+1.
func (r *Registry) startWatcher(service string, list []spi.Instance, rev int64) (*watcher, error) {
	wctx, cancel := context.WithCancel(r.ctx)
	w := &watcher{
		Feed:    registrykit.NewFeed(),
		r:       r,
		service: service,
		prefix:  r.servicePrefix(service),
		cancel:  cancel,
		done:    make(chan struct{}),
		stopped: spi.Errorf(spi.Canceled, "etcd registry: watch of %q stopped", service),
	}
	w.reset(list)

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel()
		return nil, spi.Errorf(spi.FailedPrecondition, "etcd registry: closed")
	}
	r.watchers[w] = struct{}{}
	r.mu.Unlock()

	go w.run(wctx, rev)
	return w, nil
}

// watcher follows one service. Its goroutine owns state and publishes
// each changed set into the Feed, whose Next is the watcher's.
type watcher struct {
	*registrykit.Feed
	r       *Registry
	service string
	prefix  string
	cancel  context.CancelFunc
	done    chan struct{} // closed when run returns
	stopped error         // what Next returns after Stop
	state   map[string]spi.Instance
}

// reset replaces state by a fresh list and publishes it.
func (w *watcher) reset(list []spi.Instance) {
	w.state = make(map[string]spi.Instance, len(list))
	for _, in := range list {
		w.state[w.r.key(in)] = in
	}
	w.Publish(list)
}

// Stop ends the watch; Next then fails. It waits for the goroutine.
func (w *watcher) Stop() {
	w.Close(w.stopped)
	w.cancel()
	<-w.done
	w.r.mu.Lock()
	delete(w.r.watchers, w)
	w.r.mu.Unlock()
}

// run follows the prefix from rev+1, re-listing after a compaction or a
// broken watch. It leaves the snapshot untouched while etcd is away.
func (w *watcher) run(ctx context.Context, rev int64) {
	defer close(w.done)
	defer w.Close(w.stopped)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		next, ok := w.follow(ctx, rev)
		if ok {
			rev = next
			backoff = 100 * time.Millisecond
			continue
		}
		// Re-list, retrying until etcd answers or the watch ends.
		for ctx.Err() == nil {
			lctx, cancel := context.WithTimeout(ctx, w.r.opts.dialTimeout)
			list, lrev, err := w.r.list(lctx, w.service)
			cancel()
			if err == nil {
				w.reset(list)
				rev = lrev
				break
			}
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 5*time.Second)
		}
	}
}

// follow watches from rev+1 and applies events until the watch ends. It
// returns the revision to resume from and true when the watch can simply
// be reopened there, or false when a fresh list is needed (compaction,
// cancellation by the server, an error).
func (w *watcher) follow(ctx context.Context, rev int64) (int64, bool) {
	// RequireLeader makes a member cut off from the cluster end the watch
	// instead of silently serving a stale view.
	fctx, fcancel := context.WithCancel(ctx)
	wch := w.r.cli.Watch(clientv3.WithRequireLeader(fctx), w.prefix,
		clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	defer func() {
		// Cancelling closes the channel; draining releases the client's
		// watch goroutines before we return.
		fcancel()
		for range wch {
		}
	}()
	for resp := range wch {
		if err := resp.Err(); err != nil || resp.Canceled {
			return rev, false
		}
		if len(resp.Events) == 0 {
			continue // progress notification or creation
		}
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			switch ev.Type {
			case mvccpb.PUT:
				if in, ok := w.r.decode(w.service, ev.Kv.Value); ok {
					w.state[key] = in
				} else {
					delete(w.state, key)
				}
			case mvccpb.DELETE:
				delete(w.state, key)
			}
		}
		rev = resp.Header.Revision
		list := sortedInstances(w.state)
		w.r.remember(w.service, list)
		w.Publish(list)
	}
	// The channel closed without an error response: the context ended or
	// the client closed. A fresh list is the safe way on.
	return rev, false
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
