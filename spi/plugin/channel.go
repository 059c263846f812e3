package plugin

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/spi"
	pb "github.com/kiterpc/kite/spi/plugin/proto"
)

// The filter channel carries a filter plugin's per-call traffic (Before,
// After) outside gRPC: go-plugin still starts, checks, supervises and
// stops the plugin, and its mutual-TLS gRPC connection still carries
// Info, Configure and Release. A filter call on gRPC costs an HTTP/2
// stream, TLS records and several goroutine hand-offs on each side; on
// the channel it is one frame each way on a Unix socket.
//
// Frames, both ways:
//
//	[4] length of what follows (big-endian), 9..maxChannelFrame
//	[8] request id (big-endian)
//	[1] type
//	[…] payload (chanwire.go)
//
// Host → plugin: hello (id 0, payload the channel's token, first frame of
// a connection), before (BeforeRequest), after (AfterRequest), cancel (id
// of a before the host gave up waiting for; no payload, no answer).
// Plugin → host, with the id of the request: before (BeforeResponse),
// after (AfterResponse), fail (Status: the implementation's error, e.g.
// an unknown handle). Requests are multiplexed: answers come in any
// order. A filter call's id is the id of its before frame; After names it
// in call_id.
const (
	frameHello  = 0
	frameBefore = 1
	frameAfter  = 2
	frameCancel = 3
	frameFail   = 4

	frameHeader = 13
	// maxChannelFrame bounds a frame (metadata only: generous).
	maxChannelFrame = 16 << 20
	// channelVersion is the framing version this package speaks.
	channelVersion = 1
	// helloTimeout bounds dialling the channel and its hello.
	helloTimeout = 5 * time.Second
)

// errChannelClosed is the error of calls on a channel that was closed.
var errChannelClosed = errors.New("filter channel closed")

// frameWriter writes frames on a connection. A sender appends its frame
// to a pending buffer. With at most one call in flight (inflight, kept by
// the owner) it writes the buffer itself: one write system call, no
// goroutine hand-off. With more, it wakes the writer goroutine, which
// yields once before taking the buffer so that the other senders that
// are ready to run append theirs first: concurrent calls share write
// calls. Whoever writes keeps writing until the buffer is empty.
type frameWriter struct {
	c        net.Conn
	inflight atomic.Int64
	wake     chan struct{} // to the writer goroutine; buffered 1
	done     chan struct{} // closed to end the writer goroutine
	mu       sync.Mutex
	buf      []byte
	spare    []byte
	writing  bool // a sender or the writer goroutine owns the writing
	err      error
}

func newFrameWriter(c net.Conn) *frameWriter {
	w := &frameWriter{c: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *frameWriter) loop() {
	for {
		select {
		case <-w.wake:
		case <-w.done:
			return
		}
		runtime.Gosched()
		w.mu.Lock()
		w.flushLocked()
		w.mu.Unlock()
	}
}

// flushLocked writes until the buffer is empty, then gives up the
// writing; called with mu held and writing set.
func (w *frameWriter) flushLocked() {
	for len(w.buf) > 0 && w.err == nil {
		b := w.buf
		w.buf = w.spare[:0]
		w.mu.Unlock()
		_, werr := w.c.Write(b)
		w.mu.Lock()
		if cap(b) <= 256<<10 {
			w.spare = b[:0]
		} else {
			w.spare = nil
		}
		if werr != nil {
			w.err = werr
		}
	}
	w.writing = false
}

// appendFrame appends a frame whose payload body appends (nil: none).
func appendFrame(b []byte, id uint64, typ byte, body func([]byte) []byte) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, id)
	b = append(b, typ)
	if body != nil {
		b = body(b)
	}
	n := len(b) - start - 4
	if n > maxChannelFrame {
		return b[:start], fmt.Errorf("filter channel: a %d-byte frame is over the %d-byte bound", n, maxChannelFrame)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	return b, nil
}

func (w *frameWriter) send(id uint64, typ byte, body func([]byte) []byte) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	var err error
	if w.buf, err = appendFrame(w.buf, id, typ, body); err != nil {
		w.mu.Unlock()
		return err
	}
	if w.writing {
		w.mu.Unlock()
		return nil
	}
	w.writing = true
	if w.inflight.Load() > 1 {
		w.mu.Unlock()
		w.wake <- struct{}{} // never blocks: one wake per writing
		return nil
	}
	w.flushLocked()
	err = w.err
	w.mu.Unlock()
	return err
}

// fail makes every later send fail with err and ends the writer
// goroutine; called once.
func (w *frameWriter) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	close(w.done)
}

// helloFrame is the first frame of a connection: the token, raw.
func helloFrame(token []byte) []byte {
	b, _ := appendFrame(nil, 0, frameHello, nil)
	b = append(b, token...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// readFrame reads one frame; the payload is a fresh slice.
func readFrame(r *bufio.Reader, hdr *[frameHeader]byte) (id uint64, typ byte, payload []byte, err error) {
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < frameHeader-4 || n > maxChannelFrame {
		return 0, 0, nil, fmt.Errorf("filter channel: bad frame length %d", n)
	}
	id = binary.BigEndian.Uint64(hdr[4:12])
	typ = hdr[12]
	payload = make([]byte, n-(frameHeader-4))
	if _, err = io.ReadFull(r, payload); err != nil {
		return 0, 0, nil, err
	}
	return id, typ, payload, nil
}

// ---------------------------------------------------------------- host side

// chanAppError is an error the implementation returned over the channel
// (as opposed to a failure of the channel itself).
type chanAppError struct{ e *spi.Error }

func (e chanAppError) Error() string { return e.e.Error() }

type chanReply struct {
	typ     byte
	payload []byte
	err     error
}

// filterChan is the host's end of a filter channel: one connection,
// multiplexed, shared by every call of the generation.
type filterChan struct {
	conn net.Conn
	w    *frameWriter
	next atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]chan chanReply
	err     error // set once the connection failed or was closed
	done    chan struct{}
}

var replyChans = sync.Pool{New: func() any { return make(chan chanReply, 1) }}

// dialFilterChan connects to the channel a plugin announced in Info.
func dialFilterChan(ch *pb.FilterChannel) (*filterChan, error) {
	if ch.GetVersion() != channelVersion {
		return nil, fmt.Errorf("filter channel version %d (this host speaks %d)", ch.GetVersion(), channelVersion)
	}
	if ch.GetNetwork() != "unix" {
		return nil, fmt.Errorf("filter channel network %q (want unix)", ch.GetNetwork())
	}
	conn, err := net.DialTimeout("unix", ch.GetAddress(), helloTimeout)
	if err != nil {
		return nil, err
	}
	fc := &filterChan{conn: conn, pending: make(map[uint64]chan chanReply), done: make(chan struct{})}
	_ = conn.SetWriteDeadline(time.Now().Add(helloTimeout))
	if _, err := conn.Write(helloFrame(ch.GetToken())); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetWriteDeadline(time.Time{})
	fc.w = newFrameWriter(conn)
	go fc.read()
	return fc, nil
}

func (fc *filterChan) read() {
	defer close(fc.done)
	r := bufio.NewReaderSize(fc.conn, 64<<10)
	var hdr [frameHeader]byte
	for {
		id, typ, payload, err := readFrame(r, &hdr)
		if err != nil {
			fc.shut(fmt.Errorf("filter channel: %w", err))
			return
		}
		fc.mu.Lock()
		c := fc.pending[id]
		delete(fc.pending, id)
		fc.mu.Unlock()
		if c != nil {
			c <- chanReply{typ: typ, payload: payload}
		}
	}
}

// shut fails the channel and every call waiting on it.
func (fc *filterChan) shut(err error) {
	fc.mu.Lock()
	first := fc.err == nil
	if first {
		fc.err = err
	}
	pending := fc.pending
	fc.pending = make(map[uint64]chan chanReply)
	fc.mu.Unlock()
	if first {
		fc.w.fail(err)
		_ = fc.conn.Close()
	}
	for _, c := range pending {
		c <- chanReply{err: err}
	}
}

// close ends the channel and waits for its reader.
func (fc *filterChan) close() {
	fc.shut(errChannelClosed)
	<-fc.done
}

// roundTrip sends a frame of type typ whose payload body appends and
// returns the payload of the answer. The implementation's errors are
// chanAppError; others mean the channel failed (or ctx ended).
func (fc *filterChan) roundTrip(ctx context.Context, typ byte, id uint64, body func([]byte) []byte) ([]byte, error) {
	c := replyChans.Get().(chan chanReply)
	fc.mu.Lock()
	if fc.err != nil {
		err := fc.err
		fc.mu.Unlock()
		replyChans.Put(c)
		return nil, err
	}
	fc.pending[id] = c
	fc.mu.Unlock()
	fc.w.inflight.Add(1)
	defer fc.w.inflight.Add(-1)
	if err := fc.w.send(id, typ, body); err != nil {
		fc.shut(fmt.Errorf("filter channel: %w", err))
		// The reader or shut answers every pending call, this one too.
	}
	var r chanReply
	select {
	case r = <-c:
		replyChans.Put(c)
	case <-ctx.Done():
		fc.mu.Lock()
		_, mine := fc.pending[id]
		delete(fc.pending, id)
		fc.mu.Unlock()
		if mine {
			replyChans.Put(c)
		} // else an answer is on its way into c: drop c.
		if typ == frameBefore {
			// The plugin may have started the filter: let it stop.
			_ = fc.w.send(id, frameCancel, nil)
		}
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, r.err
	}
	switch r.typ {
	case typ:
		return r.payload, nil
	case frameFail:
		rd := rd{b: r.payload}
		err := rd.status()
		if rd.err() != nil {
			return nil, fmt.Errorf("filter channel: bad error answer")
		}
		if err == nil {
			err = spi.Errorf(spi.Unknown, "filter plugin failed without a code")
		}
		return nil, chanAppError{spi.AsError(err)}
	}
	return nil, fmt.Errorf("filter channel: answer of type %d to a request of type %d", r.typ, typ)
}

// ---------------------------------------------------------------- plugin side

// checkHello reads the first frame of a connection and checks its token.
func checkHello(r *bufio.Reader, token []byte) error {
	var hdr [frameHeader]byte
	_, typ, payload, err := readFrame(r, &hdr)
	if err != nil {
		return err
	}
	if typ != frameHello {
		return fmt.Errorf("first frame of type %d, not hello", typ)
	}
	if subtle.ConstantTimeCompare(payload, token) != 1 {
		return errors.New("wrong token")
	}
	return nil
}
