package registrykit

import (
	"context"
	"sync"

	"github.com/kiterpc/kite/spi"
)

// Feed is the consumer side of a watch whose producer is a goroutine:
// the goroutine Publishes snapshots as it learns them, and Next (with
// the spi.Watcher contract) returns the newest one its caller has not
// seen, waiting when there is none. A Feed is safe for concurrent use;
// the zero value is not usable, call NewFeed.
//
// Snapshots coalesce: a Next returns only the latest, and a snapshot
// Equal to the one last returned is not returned again (a backend that
// reconnects and re-reads the same set does not wake anybody).
type Feed struct {
	mu        sync.Mutex // guards latest, published, err, notify
	latest    []spi.Instance
	published bool
	err       error         // set by Close
	notify    chan struct{} // closed and replaced on every change

	nextMu    sync.Mutex // serialises Next; guards last, delivered
	last      []spi.Instance
	delivered bool
}

// NewFeed returns a Feed with nothing published yet: Next waits for the
// first Publish.
func NewFeed() *Feed { return &Feed{notify: make(chan struct{})} }

// Publish installs list as the newest snapshot unless it is Equal to the
// current one, and reports whether it did. The Feed keeps list: the
// caller must not change it afterwards (Next hands out copies). Publish
// after Close is ignored.
func (f *Feed) Publish(list []spi.Instance) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil || (f.published && Equal(f.latest, list)) {
		return false
	}
	f.latest, f.published = list, true
	close(f.notify)
	f.notify = make(chan struct{})
	return true
}

// Close ends the feed: every Next, including one blocked now, returns
// err (which must not be nil). Only the first Close counts, so the
// watcher's Stop and its goroutine's exit may both call it.
func (f *Feed) Close(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return
	}
	f.err = err
	close(f.notify)
	f.notify = make(chan struct{})
}

// Next implements spi.Watcher.Next: after Close it returns the Close
// error; on a done ctx it returns ctx.Err(); otherwise it returns a deep
// copy of the newest snapshot unless that is Equal to the last one it
// returned, in which case it waits for a Publish, a Close or ctx.
func (f *Feed) Next(ctx context.Context) ([]spi.Instance, error) {
	f.nextMu.Lock()
	defer f.nextMu.Unlock()
	for {
		f.mu.Lock()
		latest, published, err, notify := f.latest, f.published, f.err, f.notify
		f.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if published && (!f.delivered || !Equal(latest, f.last)) {
			f.last, f.delivered = latest, true
			return CloneAll(latest), nil
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
