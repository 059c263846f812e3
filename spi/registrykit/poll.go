package registrykit

import (
	"context"
	"sync"
	"time"

	"github.com/kiterpc/kite/spi"
)

// ReadFunc reads a service's current snapshot, sorted by address (see
// SortByAddr), for a PollWatcher. changed, if not nil, is closed on the
// next change the registry can see coming; take it before reading, so a
// change made during the read is not missed. A read that fails (err not
// nil) keeps the last snapshot: the watcher waits and reads again.
type ReadFunc func() (snapshot []spi.Instance, changed <-chan struct{}, err error)

// PollOptions configure a PollWatcher.
type PollOptions struct {
	// Interval is the longest a blocked Next waits before reading again,
	// for changes that come without a signal (another process writing).
	// Zero waits for the changed channel alone.
	Interval time.Duration
	// Closed, if not nil, is closed when the registry closes; Next then
	// returns ErrClosed.
	Closed <-chan struct{}
	// ErrClosed and ErrStopped are what Next returns after the registry
	// closed and after Stop. Both are required.
	ErrClosed, ErrStopped error
}

// PollWatcher is a spi.Watcher that reads the snapshot inside Next, so a
// watcher nobody reads costs nothing: no goroutine, no backend watch.
// Next returns a deep copy of what it read unless that is Equal to what
// it returned last; then it waits for the changed channel, the interval,
// ctx, Stop or the registry's close, and reads again.
type PollWatcher struct {
	read     ReadFunc
	opts     PollOptions
	stop     chan struct{}
	stopOnce sync.Once

	mu        sync.Mutex // serialises Next; guards last, delivered
	last      []spi.Instance
	delivered bool
}

// NewPollWatcher returns a watcher that reads through read.
func NewPollWatcher(read ReadFunc, opts PollOptions) *PollWatcher {
	return &PollWatcher{read: read, opts: opts, stop: make(chan struct{})}
}

// Next implements spi.Watcher.
func (w *PollWatcher) Next(ctx context.Context) ([]spi.Instance, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var timer *time.Timer
	var tick <-chan time.Time // stays nil without an Interval
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-w.stop:
			return nil, w.opts.ErrStopped
		case <-w.opts.Closed:
			return nil, w.opts.ErrClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		snap, changed, err := w.read()
		if err == nil && (!w.delivered || !Equal(snap, w.last)) {
			w.last, w.delivered = snap, true
			return CloneAll(snap), nil
		}
		if w.opts.Interval > 0 {
			if timer == nil {
				timer = time.NewTimer(w.opts.Interval)
				tick = timer.C
			} else {
				timer.Reset(w.opts.Interval)
			}
		}
		select {
		case <-tick:
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.stop:
		case <-w.opts.Closed:
		}
	}
}

// Stop implements spi.Watcher. It may be called more than once.
func (w *PollWatcher) Stop() { w.stopOnce.Do(func() { close(w.stop) }) }

var _ spi.Watcher = (*PollWatcher)(nil)
