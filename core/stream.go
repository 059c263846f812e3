package core

import (
	"context"
	"encoding/binary"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/core/defaults"
	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"
)

// DefaultStreamWindow is how many messages a stream's receiver buffers
// before the sender must wait for a window update (defaults.StreamWindow).
const DefaultStreamWindow = defaults.StreamWindow

// InitialStreamCredit is the credit every stream sender starts with, by
// protocol: a receiver configured with a larger window grants the rest
// with a WindowUpdate as the stream opens, so the two sides never need to
// agree on their settings.
const InitialStreamCredit = 16

// frameSender is the connection side of a stream.
type frameSender interface {
	sendFrame(b []byte) error
	// sendBuilt sends the frame built in fb; a large one may be taken
	// over without copying (see batchWriter.writeBuilt).
	sendBuilt(fb *protocol.Builder) error
	endStream(id uint32)
	codecs() *codecTable
	maxFrame() int
}

// Stream is one streaming call, seen from either side. Send and Recv may
// be used from two different goroutines (one sender, one receiver) at once.
//
// Flow control counts messages: the receiver buffers at most the window,
// and grants more credit as the application consumes messages, so a slow
// reader slows its sender instead of growing memory, and never blocks
// the connection's other calls.
type Stream struct {
	ctx    context.Context
	cancel context.CancelFunc
	side   spi.Side
	id     uint32
	method string
	conn   frameSender
	codec  spi.Codec
	comp   spi.Compressor
	thresh int
	window int

	recvq    chan protocol.Frame
	consumed int

	// Server side: unread data is bounded in bytes (bufMax) and charged
	// to the server's body budget (mem); qclosed stops deliveries once
	// the stream's queue has been drained for good. Guarded by qmu.
	qmu      sync.Mutex
	qclosed  bool
	buffered int64
	bufMax   int64
	mem      budget

	// progress is when a message last moved (unix ns); idle ends the
	// stream when none has for the stream idle timeout.
	progress atomic.Int64
	idle     *time.Timer // guarded by errMu

	credits   atomic.Int32
	creditSig chan struct{}

	sendMu     sync.Mutex
	sendClosed bool

	doneOnce sync.Once
	done     chan struct{}
	errMu    sync.Mutex
	err      error // terminal error, set before done is closed
	gotEnd   bool  // receiver saw the peer's StreamEnd
	status   error // the peer's final status (client side)

	// Header is the request metadata (server side: as received).
	Header *spi.Metadata
}

func newStream(ctx context.Context, cancel context.CancelFunc, side spi.Side, id uint32, method string,
	conn frameSender, codec spi.Codec, comp spi.Compressor, thresh, window int) *Stream {
	if window <= 0 {
		window = DefaultStreamWindow
	}
	window = max(window, InitialStreamCredit)
	s := &Stream{
		ctx: ctx, cancel: cancel, side: side, id: id, method: method, conn: conn,
		codec: codec, comp: comp, thresh: thresh, window: window,
		recvq:     make(chan protocol.Frame, window+1), // +1: the final StreamEnd
		creditSig: make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	s.credits.Store(InitialStreamCredit)
	return s
}

// limitBuffer bounds the unread data of a server stream to max bytes and
// charges it to b's budget.
func (s *Stream) limitBuffer(b budget, max int64) {
	s.mem, s.bufMax = b, max
}

func (s *Stream) touch() { s.progress.Store(time.Now().UnixNano()) }

// watchIdle ends the stream with DeadlineExceeded once no message has
// moved for d (d <= 0: never).
func (s *Stream) watchIdle(d time.Duration) {
	if d <= 0 {
		return
	}
	s.touch()
	s.errMu.Lock()
	s.idle = time.AfterFunc(d, func() { s.checkIdle(d) })
	s.errMu.Unlock()
}

func (s *Stream) checkIdle(d time.Duration) {
	idle := time.Duration(time.Now().UnixNano() - s.progress.Load())
	if idle >= d {
		s.abort(spi.Errorf(spi.DeadlineExceeded, "stream %s idle for %v: no message either way (stream_idle_timeout)", s.method, d))
		return
	}
	s.errMu.Lock()
	defer s.errMu.Unlock()
	select {
	case <-s.done:
	default:
		s.idle.Reset(d - idle)
	}
}

// abort ends the stream with e; on the server the peer is sent a
// StreamEnd carrying e, so it learns why.
func (s *Stream) abort(e *spi.Error) {
	if !s.finishFirst(e) || s.side != spi.ServerSide {
		return
	}
	var fb protocol.Builder
	fb.Begin(protocol.TypeStreamEnd, protocol.FlagError, 0, 0, s.id)
	fb.B = protocol.AppendError(fb.B, e)
	fb.EndMeta()
	_ = s.conn.sendBuilt(&fb)
	fb.Release()
}

// grantInitialWindow tells the peer about receive room beyond the
// protocol's initial credit.
func (s *Stream) grantInitialWindow() {
	if extra := s.window - InitialStreamCredit; extra > 0 {
		var inc [4]byte
		binary.BigEndian.PutUint32(inc[:], uint32(extra))
		_ = s.conn.sendFrame(protocol.AppendControl(nil, protocol.TypeWindowUpdate, s.id, inc[:]))
	}
}

// Context returns the stream's context: cancelled when the stream ends,
// the peer cancels or disconnects, or the deadline passes.
func (s *Stream) Context() context.Context { return s.ctx }

// Method returns "Service.Method".
func (s *Stream) Method() string { return s.method }

// Send encodes v and sends it as one message, waiting for flow-control
// credit when the peer's window is full.
func (s *Stream) Send(v any) error {
	for {
		c := s.credits.Load()
		if c > 0 {
			if s.credits.CompareAndSwap(c, c-1) {
				break
			}
			continue
		}
		select {
		case <-s.creditSig:
		case <-s.done:
			return s.terminalErr()
		case <-s.ctx.Done():
			return ctxErr(s.ctx)
		}
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.sendClosed {
		return spi.Errorf(spi.FailedPrecondition, "stream %s: Send after CloseSend", s.method)
	}
	select {
	case <-s.done:
		return s.terminalErr()
	default:
	}
	var fb protocol.Builder
	defer fb.Release()
	fb.Begin(protocol.TypeStreamData, 0, s.codec.ID(), spi.CompressNone, s.id)
	fb.EndMeta()
	var err error
	if fb.B, err = s.codec.Marshal(fb.B, v); err != nil {
		return spi.WrapError(spi.Internal, err, "stream %s: encoding message", s.method)
	}
	if err := compressBody(&fb, s.comp, s.thresh); err != nil {
		return err
	}
	s.touch()
	return s.conn.sendBuilt(&fb)
}

// Recv receives the next message into v. It returns io.EOF when the peer
// has finished sending cleanly; on the client, a server that ended the
// stream with an error returns that error instead.
func (s *Stream) Recv(v any) error {
	var f protocol.Frame
	select {
	case f = <-s.recvq:
	default:
		select {
		case f = <-s.recvq:
		case <-s.done:
			// Drain what arrived before the end.
			select {
			case f = <-s.recvq:
			default:
				return s.terminalErr()
			}
		case <-s.ctx.Done():
			// The context also ends when the stream finishes: prefer what
			// was queued and the stream's own status.
			select {
			case f = <-s.recvq:
			case <-s.done:
				select {
				case f = <-s.recvq:
				default:
					return s.terminalErr()
				}
			default:
				return ctxErr(s.ctx)
			}
		}
	}
	if f.Type == protocol.TypeStreamEnd {
		f.Release()
		s.errMu.Lock()
		st := s.status
		s.errMu.Unlock()
		// Put the end marker back so later Recv calls see it again (there
		// is room: it was just taken out).
		select {
		case s.recvq <- protocol.Frame{Header: protocol.Header{Type: protocol.TypeStreamEnd}}:
		default:
		}
		if st != nil {
			return st
		}
		return io.EOF
	}
	var err error
	if s.mem != nil {
		var n int64
		n, err = decodeBodyIn(s.conn.codecs(), &f, v, s.conn.maxFrame(), s.mem)
		s.mem.uncharge(n) // the decoded message is the application's now
		s.unbuffer(f)
	} else {
		err = decodeBody(s.conn.codecs(), &f, v, s.conn.maxFrame())
	}
	f.Release()
	s.touch()
	s.consumed++
	if s.consumed >= (s.window+1)/2 {
		var inc [4]byte
		binary.BigEndian.PutUint32(inc[:], uint32(s.consumed))
		s.consumed = 0
		_ = s.conn.sendFrame(protocol.AppendControl(nil, protocol.TypeWindowUpdate, s.id, inc[:]))
	}
	return err
}

// CloseSend half-closes the stream: the peer's Recv returns io.EOF after
// the messages already sent.
func (s *Stream) CloseSend() error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.sendClosed {
		return nil
	}
	s.sendClosed = true
	return s.conn.sendFrame(protocol.AppendControl(nil, protocol.TypeStreamEnd, s.id, nil))
}

// deliver is called by the connection's reader with a frame for this
// stream; it never blocks (the window bounds the queue).
func (s *Stream) deliver(f protocol.Frame) {
	switch f.Type {
	case protocol.TypeStreamData:
		s.touch()
		n := frameSize(f)
		s.qmu.Lock()
		if s.qclosed {
			s.qmu.Unlock()
			f.Release()
			return
		}
		if s.mem != nil {
			if s.buffered+n > s.bufMax {
				s.qmu.Unlock()
				f.Release()
				s.abort(spi.Errorf(spi.ResourceExhausted, "stream %s: %d bytes of unread messages, over the per-stream buffer of %d bytes (4 x max_frame); read faster or send smaller messages",
					s.method, s.buffered+n, s.bufMax))
				return
			}
			if !s.mem.charge(n) {
				s.qmu.Unlock()
				f.Release()
				s.abort(s.mem.budgetError("stream message", n))
				return
			}
			s.buffered += n
		}
		select {
		case s.recvq <- f:
			s.qmu.Unlock()
		default:
			if s.mem != nil {
				s.buffered -= n
				s.mem.uncharge(n)
			}
			s.qmu.Unlock()
			f.Release()
			s.abort(spi.Errorf(spi.ResourceExhausted, "stream %s: peer exceeded the flow-control window (%d messages)", s.method, s.window))
		}
	case protocol.TypeStreamEnd:
		var status error
		if len(f.Meta) > 0 {
			var m protocol.Meta
			if err := protocol.DecodeMeta(f.Meta, &m); err != nil {
				status = spi.WrapError(spi.Internal, err, "stream %s: malformed end status", s.method)
			} else if e := m.Err(); e != nil {
				status = e
			}
		} else if f.Flags&protocol.FlagError != 0 {
			status = spi.Errorf(spi.Internal, "stream %s: error end without a status", s.method)
		}
		f.Release()
		s.errMu.Lock()
		if status != nil {
			s.status = status
		}
		dup := s.gotEnd
		s.gotEnd = true
		s.errMu.Unlock()
		if !dup {
			// Never block the connection's reader: the queue has one slot
			// beyond the window for this marker, and a peer that overran
			// the window has already ended the stream.
			select {
			case s.recvq <- protocol.Frame{Header: protocol.Header{Type: protocol.TypeStreamEnd}}:
			default:
			}
		}
	case protocol.TypeWindowUpdate:
		if len(f.Body) == 4 {
			n := binary.BigEndian.Uint32(f.Body)
			// Bound the credit a peer can claim so the counter never wraps.
			if n > 0 && int64(s.credits.Load())+int64(n) <= 1<<30 {
				s.credits.Add(int32(n))
				select {
				case s.creditSig <- struct{}{}:
				default:
				}
			}
		}
		f.Release()
	default:
		f.Release()
	}
}

// refuse ends a stream the peer declined to open, with the status its
// Response frame carries.
func (s *Stream) refuse(f protocol.Frame) {
	var m protocol.Meta
	st := spi.Errorf(spi.Internal, "stream %s refused without a status", s.method)
	if protocol.DecodeMeta(f.Meta, &m) == nil {
		if e := m.Err(); e != nil {
			st = e
		}
	}
	f.Release()
	s.errMu.Lock()
	s.status = st
	s.errMu.Unlock()
	s.finish(st)
}

// finish ends the stream with err (nil = clean) and cancels its context.
func (s *Stream) finish(err error) { s.finishFirst(err) }

// finishFirst is finish, reporting whether this call ended the stream.
func (s *Stream) finishFirst(err error) bool {
	first := false
	s.doneOnce.Do(func() {
		first = true
		s.errMu.Lock()
		s.err = err
		if s.idle != nil {
			s.idle.Stop()
		}
		s.errMu.Unlock()
		close(s.done)
		if s.cancel != nil {
			s.cancel()
		}
	})
	return first
}

func (s *Stream) terminalErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.status != nil {
		return s.status
	}
	if s.err != nil {
		return s.err
	}
	return io.EOF
}

// drainRecv releases buffered frames of a finished stream; no frame is
// queued after it.
func (s *Stream) drainRecv() {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	s.qclosed = true
	for {
		select {
		case f := <-s.recvq:
			if s.mem != nil && f.Type == protocol.TypeStreamData {
				n := frameSize(f)
				s.buffered -= n
				s.mem.uncharge(n)
			}
			f.Release()
		default:
			return
		}
	}
}

// unbuffer gives back the budget of a data frame Recv took off the queue.
func (s *Stream) unbuffer(f protocol.Frame) {
	n := frameSize(f)
	s.qmu.Lock()
	s.buffered -= n
	s.qmu.Unlock()
	s.mem.uncharge(n)
}

func frameSize(f protocol.Frame) int64 { return int64(len(f.Meta) + len(f.Body)) }

func ctxErr(ctx context.Context) error {
	switch ctx.Err() {
	case context.DeadlineExceeded:
		return spi.WrapError(spi.DeadlineExceeded, context.DeadlineExceeded, "deadline exceeded")
	case context.Canceled:
		return spi.WrapError(spi.Canceled, context.Canceled, "call canceled")
	}
	return nil
}
