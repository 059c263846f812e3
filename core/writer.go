package core

import (
	"errors"
	"net"
	"runtime"
	"sync"

	"github.com/kiterpc/kite/spi"
)

// maxPending bounds the bytes queued for one connection; writers beyond it
// wait, so a slow peer applies backpressure instead of growing memory.
const maxPending = 4 << 20

// batchWriter funnels frames from many goroutines into few syscalls: frames
// are appended to a pending buffer under a short lock, and one writer
// goroutine swaps the buffer out and writes it whole. Under load many
// frames share one write. A connection carrying a single call at a time
// (quiet) writes from the caller's goroutine, saving the handoff.
type batchWriter struct {
	conn net.Conn

	mu      sync.Mutex
	cond    sync.Cond
	pending []byte
	err     error
	waiting int
	writing bool

	signal chan struct{}
	done   chan struct{}
	onErr  func(error)
	// quiet reports whether the connection has at most one call in
	// progress; only then may a caller write directly. Under concurrency
	// direct writes would defeat batching (measured: ~1 write(2) per call
	// with both processes pinned to one CPU each).
	quiet func() bool
}

func newBatchWriter(conn net.Conn, onErr func(error), quiet func() bool) *batchWriter {
	w := &batchWriter{
		conn:   conn,
		signal: make(chan struct{}, 1),
		done:   make(chan struct{}),
		onErr:  onErr,
		quiet:  quiet,
	}
	w.cond.L = &w.mu
	go w.loop()
	return w
}

// write queues frame. The bytes are copied before it returns.
func (w *batchWriter) write(frame []byte) error {
	w.mu.Lock()
	for w.err == nil && len(w.pending) > maxPending {
		w.waiting++
		w.cond.Wait()
		w.waiting--
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	if !w.writing && len(w.pending) == 0 && w.quiet != nil && w.quiet() {
		// Quiet connection: write from the caller's goroutine and save a
		// handoff to the writer. Frames queued meanwhile are flushed by
		// the writer goroutine as one batch.
		w.writing = true
		w.mu.Unlock()
		_, err := w.conn.Write(frame)
		w.mu.Lock()
		w.writing = false
		more := len(w.pending) > 0
		if w.waiting > 0 {
			w.cond.Broadcast()
		}
		w.mu.Unlock()
		if err != nil {
			w.fail(err, true)
			w.mu.Lock()
			err = w.err // the status fail recorded
			w.mu.Unlock()
			return err
		}
		if more {
			w.kick()
		}
		return nil
	}
	wasEmpty := len(w.pending) == 0
	w.pending = append(w.pending, frame...)
	w.mu.Unlock()
	if wasEmpty {
		w.kick()
	}
	return nil
}

func (w *batchWriter) kick() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *batchWriter) loop() {
	var failed error
	defer func() {
		close(w.done)
		// Report a write failure only after done is closed: the owner's
		// handler closes the writer, which waits for done.
		if failed != nil && w.onErr != nil {
			w.onErr(failed)
		}
	}()
	var spare []byte
	for range w.signal {
		// Let the goroutines that are ready to produce frames run first, so
		// they land in this batch: on a busy connection this turns one
		// write(2) per frame into one per batch.
		runtime.Gosched()
		w.mu.Lock()
		if w.err != nil {
			w.mu.Unlock()
			return
		}
		if w.writing {
			// A caller is writing directly; it kicks us when it is done
			// and frames are waiting.
			w.mu.Unlock()
			continue
		}
		buf := w.pending
		w.pending = spare[:0]
		w.writing = len(buf) > 0
		if w.waiting > 0 {
			w.cond.Broadcast()
		}
		w.mu.Unlock()
		if len(buf) == 0 {
			spare = buf
			continue
		}
		_, err := w.conn.Write(buf)
		w.mu.Lock()
		w.writing = false
		if w.waiting > 0 {
			w.cond.Broadcast()
		}
		w.mu.Unlock()
		if err != nil {
			if w.fail(err, false) {
				failed = err
			}
			return
		}
		if cap(buf) > 256<<10 {
			buf = nil // do not pin a burst's memory on an idle connection
		}
		spare = buf[:0]
	}
}

// fail records err, wakes waiters and stops the loop. The first error
// wins; notify reports a write failure to the connection's owner (never
// for a close the owner asked for, which would re-enter it).
func (w *batchWriter) fail(err error, notify bool) (first bool) {
	// Callers get a status they can act on: a broken connection is
	// Unavailable (retryable before the request left), never Unknown.
	var se *spi.Error
	if !errors.As(err, &se) {
		err = spi.WrapError(spi.Unavailable, err, "connection failed: %v", err)
	}
	w.mu.Lock()
	first = w.err == nil
	if first {
		w.err = err
	}
	w.cond.Broadcast()
	w.mu.Unlock()
	if first {
		select {
		case w.signal <- struct{}{}:
		default:
		}
		if notify && w.onErr != nil {
			w.onErr(err)
		}
	}
	return first
}

// close stops the writer with err and closes the connection, which also
// unblocks a Write in progress; it returns when the loop has exited.
func (w *batchWriter) close(err error) {
	w.fail(err, false)
	_ = w.conn.Close()
	<-w.done
}

// drain blocks until everything queued so far has been written to the
// socket (or the writer failed). Used by graceful shutdown after GOAWAY.
func (w *batchWriter) drain() {
	w.mu.Lock()
	for w.err == nil && (len(w.pending) > 0 || w.writing) {
		w.waiting++
		w.cond.Wait()
		w.waiting--
	}
	w.mu.Unlock()
}
