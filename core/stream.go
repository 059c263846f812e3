package core

import (
	"context"
	"encoding/binary"
	"io"
	"sync"
	"sync/atomic"

	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"
)

// DefaultStreamWindow is how many messages a stream's receiver buffers
// before the sender must wait for a window update.
const DefaultStreamWindow = 64

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
	err := decodeBody(s.conn.codecs(), &f, v, s.conn.maxFrame())
	f.Release()
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
		select {
		case s.recvq <- f:
		default:
			f.Release()
			s.finish(spi.Errorf(spi.ResourceExhausted, "stream %s: peer exceeded the flow-control window", s.method))
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
func (s *Stream) finish(err error) {
	s.doneOnce.Do(func() {
		s.errMu.Lock()
		s.err = err
		s.errMu.Unlock()
		close(s.done)
		if s.cancel != nil {
			s.cancel()
		}
	})
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

// drainRecv releases buffered frames of a finished stream.
func (s *Stream) drainRecv() {
	for {
		select {
		case f := <-s.recvq:
			f.Release()
		default:
			return
		}
	}
}

func ctxErr(ctx context.Context) error {
	switch ctx.Err() {
	case context.DeadlineExceeded:
		return spi.WrapError(spi.DeadlineExceeded, context.DeadlineExceeded, "deadline exceeded")
	case context.Canceled:
		return spi.WrapError(spi.Canceled, context.Canceled, "call canceled")
	}
	return nil
}
