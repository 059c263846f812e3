package core

import (
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"
)

// maxPending bounds the bytes queued for one connection; writers beyond it
// wait, so a slow peer applies backpressure instead of growing memory.
// A connection's unsent bytes (queued plus the batch being written) above
// it put the connection under pressure: the server starts no new calls on
// it, answers wait before they are even encoded, and a connection under
// pressure for its write timeout is closed (core/server.go).
const maxPending = 4 << 20

// largeFrame is the size from which a frame sent with writeBuilt is not
// copied into the batch: the writer takes the Builder's buffer and writes
// it in place, after the small frames queued before it, with one vectored
// write (writev). Below it, one memmove into the batch is cheaper than an
// extra iovec and a pool round trip; above it the copy dominated the
// server's CPU at 64 KiB (see docs/PERFORMANCE.md).
const largeFrame = 32 << 10

// ownedFrame is a large frame queued without copying. The writer owns buf
// (the pooled buffer behind frame) and returns it to the pool once the
// frame has been handed to the kernel.
type ownedFrame struct {
	at    int // position in the batch: after pending[:at]
	frame []byte
	buf   *[]byte
}

// batchWriter funnels frames from many goroutines into few syscalls: frames
// are appended to a pending buffer under a short lock, and one writer
// goroutine swaps the buffer out and writes it whole. Under load many
// frames share one write. A connection carrying a single call at a time
// (quiet) writes from the caller's goroutine, saving the handoff.
//
// Large frames (writeBuilt, ≥ largeFrame) are queued by reference instead
// of being copied into pending; the batch is then written as a vector:
// pending runs and large frames in the order they were queued.
type batchWriter struct {
	conn net.Conn

	mu      sync.Mutex
	cond    sync.Cond
	pending []byte
	large   []ownedFrame // in queue order; their positions index pending
	queued  int          // bytes queued: len(pending) + the large frames
	inWrite int          // bytes handed to the socket write in progress
	err     error
	waiting int
	writing bool

	// over is set while unsent bytes (queued + inWrite) exceed maxPending,
	// overSince (under mu) since when; read without the lock on hot paths.
	over      atomic.Bool
	overSince time.Time

	// timeout, when positive, is the write timeout: every socket write
	// must complete within it (a deadline on the connection). Set once
	// before the first write. armedAt is when the deadline was last
	// pushed forward; only the goroutine that is writing touches it.
	timeout time.Duration
	armedAt time.Time

	signal chan struct{}
	done   chan struct{}
	onErr  func(error)
	// quiet reports whether the connection has at most one call in
	// progress; only then may a caller write directly. Under concurrency
	// direct writes would defeat batching (measured: ~1 write(2) per call
	// with both processes pinned to one CPU each).
	quiet func() bool

	// Used by the loop goroutine only: the iovec being written. vec keeps
	// the backing array between batches; wv is the copy WriteTo consumes
	// (a field, so taking its address allocates nothing).
	vec net.Buffers
	wv  net.Buffers
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
func (w *batchWriter) write(frame []byte) error { return w.send(context.Background(), frame, nil) }

// writeCtx is write for a frame whose caller may give up: while it waits
// for room it returns ctx's error once ctx ends, and the frame is dropped.
func (w *batchWriter) writeCtx(ctx context.Context, frame []byte) error {
	return w.send(ctx, frame, nil)
}

// writeBuilt finishes the frame in fb and queues it. A small frame is
// copied, as by write. A large one is either written directly (quiet
// connection) or queued without copying: the writer then takes fb's buffer
// with Detach and returns it to the pool after writing it. Either way the
// caller's fb no longer aliases anything the writer holds once this
// returns, so Release (a no-op after Detach) and reuse of fb are safe.
func (w *batchWriter) writeBuilt(fb *protocol.Builder) error {
	return w.writeBuiltCtx(context.Background(), fb)
}

// writeBuiltCtx is writeBuilt honouring ctx as writeCtx does.
func (w *batchWriter) writeBuiltCtx(ctx context.Context, fb *protocol.Builder) error {
	frame := fb.Finish()
	if len(frame) < largeFrame {
		return w.send(ctx, frame, nil)
	}
	return w.send(ctx, frame, fb)
}

// writeUrgent queues a small control frame (GOAWAY) without waiting for
// room: it never blocks, whatever the peer's reading. One per connection,
// so the cap is exceeded by a few bytes at most.
func (w *batchWriter) writeUrgent(frame []byte) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	wasEmpty := w.queued == 0
	w.pending = append(w.pending, frame...)
	w.queued += len(frame)
	w.notePressure()
	w.mu.Unlock()
	if wasEmpty {
		w.kick()
	}
	return nil
}

// waitFor blocks, with mu held, while full() holds, the writer has not
// failed and ctx has not ended. It returns the writer's error or ctx's.
func (w *batchWriter) waitFor(ctx context.Context, full func() bool) error {
	if w.err == nil && full() {
		var stop func() bool
		if ctx.Done() != nil { // Background never ends: nothing to watch
			// Wake the waiters when ctx ends; Broadcast under mu so the
			// wake-up cannot fall between a check and the Wait.
			stop = context.AfterFunc(ctx, func() {
				w.mu.Lock()
				w.cond.Broadcast()
				w.mu.Unlock()
			})
		}
		w.waiting++
		for w.err == nil && full() && ctx.Err() == nil {
			w.cond.Wait()
		}
		w.waiting--
		if stop != nil {
			stop()
		}
	}
	if w.err != nil {
		return w.err
	}
	if full() {
		return ctx.Err()
	}
	return nil
}

// queueFull: a sender must wait (a batch's worth is already queued).
func (w *batchWriter) queueFull() bool { return w.queued > maxPending }

// overCap: unsent bytes, queued or being written, exceed the cap.
func (w *batchWriter) overCap() bool { return w.queued+w.inWrite > maxPending }

// notePressure records, with mu held, when unsent bytes crossed the cap.
func (w *batchWriter) notePressure() {
	over := w.overCap()
	if over == w.over.Load() {
		return
	}
	w.over.Store(over)
	if over {
		w.overSince = time.Now()
	} else {
		w.overSince = time.Time{}
	}
}

// waitRoom blocks while a frame could not be queued without waiting
// (what an answer does before it is encoded, so a handler under
// back-pressure holds its response value, not an encoded copy too). It
// returns the writer's error, or ctx's once ctx ends.
func (w *batchWriter) waitRoom(ctx context.Context) error {
	if !w.over.Load() {
		return nil // a full queue is over the cap too
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.waitFor(ctx, w.queueFull)
}

// waitBelowCap blocks while the connection's unsent bytes exceed the cap,
// until the writer fails. The server's reader calls it before starting a
// call: a peer that does not read gets no new calls started.
func (w *batchWriter) waitBelowCap() error {
	if !w.over.Load() {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.waitFor(context.Background(), w.overCap)
}

// pressure reports since when unsent bytes have exceeded the cap (zero
// time: they do not) and how many there are.
func (w *batchWriter) pressure() (since time.Time, unsent int) {
	if !w.over.Load() {
		return time.Time{}, 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.overSince, w.queued + w.inWrite
}

// armDeadline gives the socket write about to start the write timeout.
// The deadline is pushed forward only when an eighth of the timeout has
// passed since it was last set (setting it costs a timer update), so a
// write gets between 7/8 of the timeout and all of it. Called by the
// goroutine that set writing.
func (w *batchWriter) armDeadline() {
	if w.timeout <= 0 {
		return
	}
	now := time.Now()
	if now.Sub(w.armedAt) < w.timeout/8 {
		return
	}
	w.armedAt = now
	_ = w.conn.SetWriteDeadline(now.Add(w.timeout))
}

// send queues frame; fb, when set, is the Builder frame lives in, whose
// buffer the writer takes over instead of copying frame. While the queue
// is full it waits; ctx ending drops the frame.
func (w *batchWriter) send(ctx context.Context, frame []byte, fb *protocol.Builder) error {
	w.mu.Lock()
	if err := w.waitFor(ctx, w.queueFull); err != nil {
		w.mu.Unlock()
		return err
	}
	if !w.writing && w.queued == 0 && w.quiet != nil && w.quiet() {
		// Quiet connection: write from the caller's goroutine and save a
		// handoff to the writer. Frames queued meanwhile are flushed by
		// the writer goroutine as one batch. The caller keeps its buffer:
		// the write is over when this returns.
		w.writing = true
		w.inWrite = len(frame)
		w.notePressure()
		w.mu.Unlock()
		w.armDeadline()
		_, err := w.conn.Write(frame)
		w.mu.Lock()
		w.writing = false
		w.inWrite = 0
		w.notePressure()
		more := w.queued > 0
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
	wasEmpty := w.queued == 0
	if fb != nil {
		f, buf := fb.Detach()
		w.large = append(w.large, ownedFrame{at: len(w.pending), frame: f, buf: buf})
	} else {
		w.pending = append(w.pending, frame...)
	}
	w.queued += len(frame)
	w.notePressure()
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
	var spareLarge []ownedFrame
	for range w.signal {
		// Let the goroutines that are ready to produce frames run first, so
		// they land in this batch: on a busy connection this turns one
		// write(2) per frame into one per batch.
		runtime.Gosched()
		w.mu.Lock()
		if w.err != nil {
			// Frames still queued are dropped; large ones go to the
			// garbage collector, never back to the pool twice.
			w.mu.Unlock()
			return
		}
		if w.writing {
			// A caller is writing directly; it kicks us when it is done
			// and frames are waiting.
			w.mu.Unlock()
			continue
		}
		buf, large, n := w.pending, w.large, w.queued
		w.pending, w.large, w.queued = spare[:0], spareLarge[:0], 0
		w.writing = n > 0
		w.inWrite = n
		if w.waiting > 0 {
			w.cond.Broadcast()
		}
		w.mu.Unlock()
		if n == 0 {
			spare, spareLarge = buf, large
			continue
		}
		w.armDeadline()
		var err error
		if len(large) == 0 {
			_, err = w.conn.Write(buf)
		} else {
			err = w.writeVec(buf, large)
			// The kernel has the bytes (or the connection failed): the
			// large frames' buffers go back to the pool.
			for i := range large {
				protocol.PutBuffer(large[i].buf)
				large[i] = ownedFrame{}
			}
		}
		w.mu.Lock()
		w.writing = false
		w.inWrite = 0
		w.notePressure()
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
		spare, spareLarge = buf[:0], large[:0]
	}
}

// writeVec writes one batch holding large frames as a vector: the runs of
// buf between them and the frames themselves, in queue order. On TCP and
// Unix sockets this is one writev (more only past the kernel's iovec limit
// or on a short write); other connections (TLS) get one Write per element.
func (w *batchWriter) writeVec(buf []byte, large []ownedFrame) error {
	v := w.vec[:0]
	prev := 0
	for i := range large {
		if at := large[i].at; at > prev {
			v = append(v, buf[prev:at])
			prev = at
		}
		v = append(v, large[i].frame)
	}
	if prev < len(buf) {
		v = append(v, buf[prev:])
	}
	w.wv = v
	_, err := w.wv.WriteTo(w.conn)
	clear(v) // drop the references to frames about to be recycled
	w.vec, w.wv = v[:0], nil
	return err
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
// socket (or the writer failed).
func (w *batchWriter) drain() { _ = w.drainCtx(context.Background()) }

// drainCtx is drain giving up when ctx ends; it returns ctx's
// error then, and nil once drained or failed. Graceful shutdown drains
// with its deadline.
func (w *batchWriter) drainCtx(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.waitFor(ctx, func() bool { return w.queued > 0 || w.writing }); err != nil && err != w.err {
		return err
	}
	return nil
}
