package eureka

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// cache is the registry-wide copy of the Eureka registry that watches read,
// kept the way the Eureka client keeps its own: one full fetch (GET
// /apps), then one delta fetch (GET /apps/delta) per poll interval,
// applied by actionType (ADDED, MODIFIED, DELETED), and a full fetch again
// whenever the local apps__hashcode ("DOWN_1_UP_3_") differs from the
// server's after applying a delta.
type cache struct {
	r *Registry

	refreshMu sync.Mutex // serialises fetches
	apps      map[string]map[string]instanceJSON
	have      bool
	// Refreshes are numbered as they start; done is the number of the
	// last one that completed. A Watch needs a refresh that started after
	// it was called, and shares one with concurrent Watches.
	seq, done atomic.Uint64

	mu       sync.Mutex
	watchers map[string]map[*watcher]struct{} // by service
	started  bool
	stop     context.CancelFunc
	finished chan struct{} // closed when the loop ends

	fulls, deltas int // fetch counts, for tests
}

func newCache(r *Registry) *cache {
	return &cache{r: r, watchers: make(map[string]map[*watcher]struct{})}
}

// Watch returns a watcher of service fed from the cache. It refreshes the
// cache first, so the first snapshot is as fresh as a Resolve; if that
// fails, Watch fails.
func (r *Registry) Watch(ctx context.Context, service string) (spi.Watcher, error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	c := r.cache
	c.mu.Lock()
	if r.ctx.Err() != nil {
		c.mu.Unlock()
		return nil, spi.Errorf(spi.FailedPrecondition, "eureka registry: closed")
	}
	if !c.started {
		c.started = true
		lctx, cancel := context.WithCancel(r.ctx)
		c.stop, c.finished = cancel, make(chan struct{})
		go c.loop(lctx)
	}
	c.mu.Unlock()
	err := c.refresh(ctx, c.begun())
	if err != nil {
		return nil, wrap(err, "eureka registry: watching %q", service)
	}
	w := &watcher{Feed: registrykit.NewFeed(), c: c, service: service,
		stopped: spi.Errorf(spi.Canceled, "eureka registry: watch of %q stopped", service)}
	c.refreshMu.Lock() // no publish between reading the snapshot and joining
	list, err := c.snapshot(service)
	if err != nil {
		c.refreshMu.Unlock()
		return nil, spi.WrapError(spi.Unavailable, err, "eureka registry: watching %q: %v", service, err)
	}
	w.Publish(list)
	c.mu.Lock()
	if r.ctx.Err() != nil {
		c.mu.Unlock()
		c.refreshMu.Unlock()
		return nil, spi.Errorf(spi.FailedPrecondition, "eureka registry: closed")
	}
	if c.watchers[service] == nil {
		c.watchers[service] = make(map[*watcher]struct{})
	}
	c.watchers[service][w] = struct{}{}
	c.mu.Unlock()
	c.refreshMu.Unlock()
	r.remember(service, list)
	return w, nil
}

type watcher struct {
	*registrykit.Feed
	c       *cache
	service string
	stopped error
}

// Stop ends the watch.
func (w *watcher) Stop() {
	w.Close(w.stopped)
	w.c.mu.Lock()
	delete(w.c.watchers[w.service], w)
	if len(w.c.watchers[w.service]) == 0 {
		delete(w.c.watchers, w.service)
	}
	w.c.mu.Unlock()
}

func (c *cache) loop(ctx context.Context) {
	defer close(c.finished)
	t := time.NewTicker(c.r.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// On failure the last snapshots stand; the next tick tries again.
		_ = c.refresh(ctx, c.begun())
	}
}

// close ends the loop and every watch.
func (c *cache) close() {
	c.mu.Lock()
	stop, done := c.stop, c.finished
	var ws []*watcher
	for _, set := range c.watchers {
		for w := range set {
			ws = append(ws, w)
		}
	}
	c.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	for _, w := range ws {
		w.Close(spi.Errorf(spi.FailedPrecondition, "eureka registry: closed"))
	}
}

// begun is the number of the last refresh started so far.
func (c *cache) begun() uint64 { return c.seq.Load() }

// refresh brings the cache up to date, unless a refresh that started
// after after (a number from begun) completed meanwhile, and publishes
// to every watcher.
func (c *cache) refresh(ctx context.Context, after uint64) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	if c.done.Load() > after {
		return nil
	}
	n := c.seq.Add(1)
	if !c.have {
		if err := c.full(ctx); err != nil {
			return err
		}
	} else if err := c.delta(ctx); err != nil {
		return err
	}
	c.done.Store(n)
	c.publish()
	return nil
}

func (c *cache) fetch(ctx context.Context, path string) (applicationsJSON, error) {
	ctx, cancel := context.WithTimeout(ctx, c.r.timeout)
	defer cancel()
	body, err := c.r.api.call(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return applicationsJSON{}, err
	}
	var resp struct {
		Applications *applicationsJSON `json:"applications"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.Applications == nil {
		if err == nil {
			err = fmt.Errorf(`no "applications" object`)
		}
		return applicationsJSON{}, spi.WrapError(spi.Unavailable, err, "GET %s: the answer is not Eureka's applications JSON (%v): %.200q", path, err, body)
	}
	return *resp.Applications, nil
}

func (c *cache) full(ctx context.Context) error {
	resp, err := c.fetch(ctx, "/apps")
	if err != nil {
		return err
	}
	c.fulls++
	apps := make(map[string]map[string]instanceJSON)
	for _, a := range resp.Application {
		for _, in := range a.Instance {
			put(apps, a.Name, in)
		}
	}
	c.apps, c.have = apps, true
	return nil
}

func put(apps map[string]map[string]instanceJSON, app string, in instanceJSON) {
	app = strings.ToUpper(app)
	if apps[app] == nil {
		apps[app] = make(map[string]instanceJSON)
	}
	apps[app][in.InstanceID] = in
}

// delta applies GET /apps/delta and falls back to a full fetch when the
// hash codes disagree afterwards.
func (c *cache) delta(ctx context.Context) error {
	resp, err := c.fetch(ctx, "/apps/delta")
	if err != nil {
		return err
	}
	c.deltas++
	for _, a := range resp.Application {
		app := strings.ToUpper(a.Name)
		for _, in := range a.Instance {
			switch in.ActionType {
			case "DELETED":
				delete(c.apps[app], in.InstanceID)
				if len(c.apps[app]) == 0 {
					delete(c.apps, app)
				}
			default: // ADDED, MODIFIED
				put(c.apps, app, in)
			}
		}
	}
	// An empty registry's hash code is "": compare always. (A server that
	// never fills it costs a full fetch per poll, but stays correct.)
	if hashCode(c.apps) != resp.AppsHashcode {
		return c.full(ctx)
	}
	return nil
}

// hashCode is Eureka's reconcile hash code: "STATUS_count_" for each
// status, in status order.
func hashCode(apps map[string]map[string]instanceJSON) string {
	counts := map[string]int{}
	for _, ins := range apps {
		for _, in := range ins {
			counts[in.Status]++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s_%d_", k, counts[k])
	}
	return b.String()
}

// snapshot converts the cached instances of service. Call with
// refreshMu held.
func (c *cache) snapshot(service string) ([]spi.Instance, error) {
	ins := c.apps[appName(service)]
	list := make([]instanceJSON, 0, len(ins))
	for _, in := range ins {
		list = append(list, in)
	}
	return toInstances(service, list)
}

// publish hands each watched service's snapshot to its watchers (the
// Feeds drop unchanged ones). Call with refreshMu held.
func (c *cache) publish() {
	c.mu.Lock()
	byService := make(map[string][]*watcher, len(c.watchers))
	for svc, set := range c.watchers {
		for w := range set {
			byService[svc] = append(byService[svc], w)
		}
	}
	c.mu.Unlock()
	for svc, ws := range byService {
		list, err := c.snapshot(svc)
		if err != nil {
			continue // a malformed instance: keep the last snapshot
		}
		c.r.remember(svc, list)
		for _, w := range ws {
			w.Publish(registrykit.CloneAll(list))
		}
	}
}
