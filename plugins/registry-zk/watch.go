package zookeeper

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// Watch implements spi.Registry. It reads the current instances (so the
// first Next returns at once) and follows the service node's children
// and each instance node's data from a goroutine owned by the watcher.
func (r *Registry) Watch(ctx context.Context, service string) (spi.Watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := &watcher{
		Feed:     registrykit.NewFeed(),
		r:        r,
		service:  service,
		dir:      r.servicePath(service),
		children: map[string]*node{},
		stop:     make(chan struct{}),
		init:     make(chan error, 1),
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errClosed
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go w.run()
	select {
	case err := <-w.init:
		if err != nil {
			w.Stop()
			return nil, r.wrap(err, "watching %q", service)
		}
		return w, nil
	case <-ctx.Done():
		w.Stop()
		return nil, ctx.Err()
	}
}

// node is what a watcher knows of one instance znode.
type node struct {
	in    spi.Instance
	valid bool            // the data decoded as an instance
	ch    <-chan zk.Event // armed data watch; nil: (re)read the data
}

// watcher follows one service from a goroutine (run) that publishes
// each changed set into the Feed, whose Next is the watcher's. While
// ZooKeeper is unreachable nothing is published: the caller keeps the
// last snapshot.
type watcher struct {
	*registrykit.Feed
	r       *Registry
	service string
	dir     string

	// Owned by run.
	children map[string]*node
	childCh  <-chan zk.Event // armed children watch; nil: re-list
	existCh  <-chan zk.Event // armed exists watch while the service node is missing

	stop     chan struct{}
	stopOnce sync.Once
	init     chan error // the first refresh's outcome
}

var errStopped = spi.Errorf(spi.Canceled, "zk registry: watch stopped")

// Stop implements spi.Watcher. (The client library cannot cancel a
// ZooKeeper watch; a stopped watcher's armed watches fire once into
// buffered channels nobody reads, and are gone.)
func (w *watcher) Stop() {
	w.Close(errStopped) // first, so that run's Close(errClosed) does not win
	w.stopOnce.Do(func() { close(w.stop) })
}

func (w *watcher) publish() {
	snap := make([]spi.Instance, 0, len(w.children))
	for _, n := range w.children {
		if n.valid {
			snap = append(snap, n.in)
		}
	}
	registrykit.SortByAddr(snap)
	// An unchanged set (e.g. re-read after an expiry) wakes nobody.
	w.Publish(snap)
}

func (w *watcher) run() {
	defer w.r.wg.Done()
	// Unless Stop closed the feed already, run ends because the registry
	// closes.
	defer w.Close(errClosed)
	first := true
	backoff := 100 * time.Millisecond
	for {
		err := w.refresh()
		if first {
			w.init <- err
			if err != nil {
				return
			}
			first = false
		}
		if err == nil {
			backoff = 100 * time.Millisecond
			w.publish()
			if !w.wait() {
				return
			}
			continue
		}
		if errors.Is(err, zk.ErrClosing) {
			return
		}
		// Unreachable or mid-expiry: keep the last snapshot, retry when
		// a session is (re)established or after a backoff.
		w.r.log.Debug("watch refresh failed; keeping the last snapshot", "service", w.service, "err", err)
		select {
		case <-w.stop:
			return
		case <-w.r.done:
			return
		case <-w.r.connected():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// refresh re-reads what is not covered by an armed watch and arms it.
func (w *watcher) refresh() error {
	if err := w.r.awaitAuth(); err != nil {
		return err
	}
	conn := w.r.conn
	for w.childCh == nil && w.existCh == nil {
		names, _, ch, err := conn.ChildrenW(w.dir)
		if errors.Is(err, zk.ErrNoNode) {
			ok, _, ech, err := conn.ExistsW(w.dir)
			if err != nil {
				return err
			}
			if ok {
				continue // created in between: list it
			}
			w.existCh = ech
			clear(w.children)
			return nil
		}
		if err != nil {
			return err
		}
		w.childCh = ch
		keep := make(map[string]*node, len(names))
		for _, name := range names {
			if n, ok := w.children[name]; ok {
				keep[name] = n
			} else {
				keep[name] = &node{}
			}
		}
		w.children = keep
	}
	for name, n := range w.children {
		if n.ch != nil {
			continue
		}
		data, _, ch, err := conn.GetW(w.dir + "/" + name)
		if errors.Is(err, zk.ErrNoNode) {
			delete(w.children, name) // the children watch fires too
			continue
		}
		if err != nil {
			return err
		}
		n.ch = ch
		n.in, n.valid = w.r.decode(w.service, name, data)
	}
	return nil
}

// wait blocks until a watch fires and marks what must be re-read. It
// returns false when the watcher or the registry ends.
func (w *watcher) wait() bool {
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w.stop)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w.r.done)},
	}
	const fixed = 2
	var names []string // names[i] belongs to cases[fixed+i]; "" for the directory
	if w.childCh != nil {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w.childCh)})
		names = append(names, "")
	}
	if w.existCh != nil {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w.existCh)})
		names = append(names, "")
	}
	for name, n := range w.children {
		if n.ch != nil {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(n.ch)})
			names = append(names, name)
		}
	}
	i, v, ok := reflect.Select(cases)
	if i < fixed {
		return false
	}
	var ev zk.Event
	if ok {
		ev = v.Interface().(zk.Event)
	}
	if !ok || ev.Type == zk.EventNotWatching {
		if errors.Is(ev.Err, zk.ErrClosing) {
			return false
		}
		// Session expired: every watch of the old session is void.
		w.childCh, w.existCh = nil, nil
		for _, n := range w.children {
			n.ch = nil
		}
		return true
	}
	name := names[i-fixed]
	if name == "" {
		w.childCh, w.existCh = nil, nil
		return true
	}
	if ev.Type == zk.EventNodeDeleted {
		delete(w.children, name)
	} else if n := w.children[name]; n != nil {
		n.ch = nil
	}
	return true
}
