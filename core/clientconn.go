package core

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"
)

// pendingCall is a unary call waiting for its response.
type pendingCall struct {
	done chan struct{} // capacity 1: the reader never blocks on it
	f    protocol.Frame
	err  error
}

var pendingPool = sync.Pool{New: func() any { return &pendingCall{done: make(chan struct{}, 1)} }}

// clientConn is one long-lived multiplexed connection to an endpoint.
type clientConn struct {
	c      *Client
	ep     *endpoint
	addr   string
	conn   net.Conn
	w      *batchWriter
	r      *protocol.Reader
	nextID atomic.Uint32

	inflight   atomic.Int32 // unary calls and streams registered
	lastRead   atomic.Int64
	readAt     int64 // when bytes last arrived (the reader's own: yieldReader)
	lastUsed   atomic.Int64
	pingSentAt atomic.Int64 // 0: no ping outstanding
	goaway     atomic.Bool
	dead       atomic.Bool
	idleClosed atomic.Bool // closed by the idle timeout: not redialed
	proven     atomic.Bool // a frame was read: the peer speaks Kite

	mu      sync.Mutex
	pending map[uint32]*pendingCall
	streams map[uint32]*Stream
	err     error // why it died

	readerDone chan struct{}
	closeOnce  sync.Once
}

func newClientConn(c *Client, ep *endpoint, nc net.Conn) *clientConn {
	addr := ep.addr
	cc := &clientConn{
		c: c, ep: ep, addr: addr, conn: nc,
		pending:    make(map[uint32]*pendingCall),
		streams:    make(map[uint32]*Stream),
		readerDone: make(chan struct{}),
	}
	cc.r = protocol.NewReader(yieldReader{nc, &cc.readAt, nil}, 32<<10, c.opts.MaxFrame, c.opts.MaxMetadata)
	now := time.Now().UnixNano()
	cc.lastRead.Store(now)
	cc.lastUsed.Store(now)
	cc.w = newBatchWriter(nc, func(err error) { cc.close(spi.WrapError(spi.Unavailable, err, "writing to %s", addr)) },
		func() bool { return cc.inflight.Load() <= 1 })
	go cc.readLoop()
	return cc
}

// usable reports whether new calls may be placed on the connection.
func (cc *clientConn) usable() bool { return !cc.dead.Load() && !cc.goaway.Load() }

func (cc *clientConn) sendBuilt(fb *protocol.Builder) error { return cc.w.writeBuilt(fb) }

func (cc *clientConn) sendFrame(b []byte) error { return cc.w.write(b) }
func (cc *clientConn) codecs() *codecTable      { return cc.c.table }
func (cc *clientConn) maxFrame() int            { return cc.c.opts.MaxFrame }
func (cc *clientConn) endStream(id uint32) {
	cc.mu.Lock()
	delete(cc.streams, id)
	cc.mu.Unlock()
	cc.maybeRetire()
}

// allocID returns a request id not in use on this connection.
func (cc *clientConn) allocID() uint32 {
	for {
		id := cc.nextID.Add(1)
		if id == 0 {
			continue
		}
		if _, busy := cc.pending[id]; busy {
			continue
		}
		if _, busy := cc.streams[id]; busy {
			continue
		}
		return id
	}
}

// register reserves an id for a unary call.
func (cc *clientConn) register(pc *pendingCall) (uint32, error) {
	cc.mu.Lock()
	if cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		return 0, err
	}
	id := cc.allocID()
	cc.pending[id] = pc
	cc.mu.Unlock()
	return id, nil
}

// unregister removes a pending call; it reports false when the reader has
// already taken it (a response or a failure is on its way to pc.done).
func (cc *clientConn) unregister(id uint32) bool {
	cc.mu.Lock()
	_, ok := cc.pending[id]
	if ok {
		delete(cc.pending, id)
	}
	cc.mu.Unlock()
	if ok {
		cc.maybeRetire()
	}
	return ok
}

// maybeRetire closes a connection that received GOAWAY once its last call
// has finished.
func (cc *clientConn) maybeRetire() {
	if !cc.goaway.Load() {
		return
	}
	cc.mu.Lock()
	idle := len(cc.pending) == 0 && len(cc.streams) == 0
	cc.mu.Unlock()
	if idle {
		cc.close(spi.Errorf(spi.Unavailable, "connection to %s drained after GOAWAY", cc.addr))
	}
}

func (cc *clientConn) readLoop() {
	defer close(cc.readerDone)
	for {
		var f protocol.Frame
		if err := cc.r.ReadFrame(&f); err != nil {
			var cause error
			switch {
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
				cause = spi.WrapError(spi.Unavailable, err, "connection to %s closed", cc.addr)
			default:
				cause = spi.WrapError(spi.Unavailable, err, "connection to %s failed", cc.addr)
			}
			cc.close(cause)
			return
		}
		cc.lastRead.Store(cc.readAt)
		if !cc.proven.Load() {
			cc.proven.Store(true)
			cc.ep.connProven()
		}
		switch f.Type {
		case protocol.TypeResponse:
			cc.mu.Lock()
			pc := cc.pending[f.ID]
			delete(cc.pending, f.ID)
			cc.mu.Unlock()
			if pc == nil {
				// A stream the server refused to open (unknown method,
				// limits, GOAWAY) is answered with a Response.
				cc.mu.Lock()
				st := cc.streams[f.ID]
				delete(cc.streams, f.ID)
				cc.mu.Unlock()
				if st != nil {
					st.refuse(f)
					cc.maybeRetire()
				} else {
					f.Release() // the caller gave up
				}
				continue
			}
			pc.f = f
			pc.done <- struct{}{}
		case protocol.TypeStreamData, protocol.TypeStreamEnd, protocol.TypeWindowUpdate:
			cc.mu.Lock()
			st := cc.streams[f.ID]
			if st != nil && f.Type == protocol.TypeStreamEnd {
				delete(cc.streams, f.ID)
			}
			cc.mu.Unlock()
			if st == nil {
				f.Release()
				continue
			}
			end := f.Type == protocol.TypeStreamEnd
			st.deliver(f)
			if end {
				st.finish(nil)
				cc.maybeRetire()
			}
		case protocol.TypeCancel:
			f.Release()
			cc.mu.Lock()
			st := cc.streams[f.ID]
			delete(cc.streams, f.ID)
			cc.mu.Unlock()
			if st != nil {
				st.finish(spi.Errorf(spi.Canceled, "stream canceled by the server"))
			}
		case protocol.TypePong:
			cc.pingSentAt.Store(0)
			f.Release()
		case protocol.TypePing:
			_ = cc.w.write(protocol.AppendControl(nil, protocol.TypePong, f.ID, f.Body))
			f.Release()
		case protocol.TypeGoAway:
			var m protocol.Meta
			_ = protocol.DecodeMeta(f.Meta, &m)
			reason := m.Err()
			f.Release()
			cc.c.log.Debug("server sent GOAWAY", "addr", cc.addr, "reason", reason)
			cc.goaway.Store(true)
			cc.ep.connLost(false, nil)
			cc.maybeRetire()
		default:
			f.Release()
		}
	}
}

// close fails every call in flight with reason and releases the socket.
func (cc *clientConn) close(reason error) {
	cc.closeOnce.Do(func() {
		cc.dead.Store(true)
		cc.mu.Lock()
		cc.err = reason
		pending := cc.pending
		streams := cc.streams
		cc.pending = map[uint32]*pendingCall{}
		cc.streams = map[uint32]*Stream{}
		cc.mu.Unlock()
		for _, pc := range pending {
			pc.err = reason
			pc.done <- struct{}{}
		}
		for _, st := range streams {
			st.finish(reason)
		}
		cc.w.close(reason)
		if !cc.idleClosed.Load() {
			cc.ep.connLost(!cc.proven.Load(), reason)
		}
	})
}

// shutdown closes the connection and waits for its goroutines.
func (cc *clientConn) shutdown(reason error) {
	cc.close(reason)
	<-cc.readerDone
}

// roundTrip sends one unary or one-way request frame and, for unary
// calls, waits for the response and decodes it into call.Response.
func (cc *clientConn) roundTrip(ctx context.Context, call *spi.Call, sent *bool) error {
	c := cc.c
	cc.lastUsed.Store(time.Now().UnixNano())
	cc.inflight.Add(1)
	defer cc.inflight.Add(-1)
	var pc *pendingCall
	var id uint32
	if !call.OneWay {
		pc = pendingPool.Get().(*pendingCall)
		var err error
		if id, err = cc.register(pc); err != nil {
			pendingPool.Put(pc)
			return err
		}
	}
	var fb protocol.Builder
	t := protocol.TypeRequest
	if call.OneWay {
		t = protocol.TypeOneWay
	}
	codec := chooseCodec(c.table, c.codec, call.Request, call.Response)
	fb.Begin(t, 0, codec.ID(), 0, id)
	fb.B = protocol.AppendMethod(fb.B, call.Method)
	if dl, ok := ctx.Deadline(); ok {
		fb.B = protocol.AppendTimeout(fb.B, time.Until(dl))
	}
	if call.Meta != nil {
		fb.B = protocol.AppendMD(fb.B, call.Meta)
	}
	fb.EndMeta()
	var err error
	if fb.B, err = codec.Marshal(fb.B, call.Request); err != nil {
		err = spi.WrapError(spi.InvalidArgument, err, "encoding %s request with %s", call.Method, codec.Name())
	} else if err = compressBody(&fb, c.comp, c.opts.CompressThreshold); err == nil {
		if n := len(fb.B) - protocol.HeaderSize; n > c.opts.MaxFrame {
			err = spi.Errorf(spi.ResourceExhausted, "request of %d bytes exceeds max_frame (%d)", n, c.opts.MaxFrame)
		} else {
			err = cc.w.writeBuilt(&fb)
		}
	}
	fb.Release()
	if err != nil {
		if pc != nil && cc.unregister(id) {
			pendingPool.Put(pc)
		} else if pc != nil {
			<-pc.done // the reader is failing it; wait so pc can be reused
			pc.f.Release()
			pc.f, pc.err = protocol.Frame{}, nil
			pendingPool.Put(pc)
		}
		return spi.AsError(err)
	}
	*sent = true
	if call.OneWay {
		return nil
	}

	select {
	case <-pc.done:
	case <-ctx.Done():
		if cc.unregister(id) {
			// Tell the server to stop working on it.
			_ = cc.w.write(protocol.AppendControl(nil, protocol.TypeCancel, id, nil))
			pendingPool.Put(pc)
			return ctxErr(ctx)
		}
		<-pc.done // the answer raced the cancellation; use it
	}
	f := pc.f
	err = pc.err
	pc.f, pc.err = protocol.Frame{}, nil
	pendingPool.Put(pc)
	if err != nil {
		return err
	}
	defer f.Release()
	var meta protocol.Meta
	if len(f.Meta) > 0 {
		if call.Trailer != nil {
			meta.MD = call.Trailer
		}
		if derr := protocol.DecodeMeta(f.Meta, &meta); derr != nil {
			return spi.WrapError(spi.Internal, derr, "malformed response metadata from %s", cc.addr)
		}
		if e := meta.Err(); e != nil {
			return e
		}
	}
	if call.Response == nil {
		return nil
	}
	return decodeBody(c.table, &f, call.Response, c.opts.MaxFrame)
}

// openStream starts a stream on this connection.
func (cc *clientConn) openStream(ctx context.Context, call *spi.Call) (*Stream, error) {
	c := cc.c
	cc.lastUsed.Store(time.Now().UnixNano())
	sctx, cancel := context.WithCancel(ctx)
	cc.mu.Lock()
	if cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		cancel()
		return nil, err
	}
	id := cc.allocID()
	st := newStream(sctx, cancel, spi.ClientSide, id, call.Method, cc, c.codec, c.comp, c.opts.CompressThreshold, c.opts.StreamWindow)
	cc.streams[id] = st
	cc.mu.Unlock()

	var fb protocol.Builder
	fb.Begin(protocol.TypeRequest, protocol.FlagStream, c.codec.ID(), 0, id)
	fb.B = protocol.AppendMethod(fb.B, call.Method)
	if dl, ok := ctx.Deadline(); ok {
		fb.B = protocol.AppendTimeout(fb.B, time.Until(dl))
	}
	if call.Meta != nil {
		fb.B = protocol.AppendMD(fb.B, call.Meta)
	}
	fb.EndMeta()
	err := cc.w.write(fb.Finish())
	fb.Release()
	if err != nil {
		cc.endStream(id)
		st.finish(err)
		return nil, spi.AsError(err)
	}
	st.grantInitialWindow()
	// When the caller gives up, tell the server and end the stream. A
	// stream that ends normally cancels sctx too; it is no longer in the
	// map then, so no cancel frame is sent.
	cc.inflight.Add(1)
	context.AfterFunc(sctx, func() {
		cc.inflight.Add(-1)
		cc.mu.Lock()
		_, live := cc.streams[id]
		delete(cc.streams, id)
		cc.mu.Unlock()
		if live {
			_ = cc.w.write(protocol.AppendControl(nil, protocol.TypeCancel, id, nil))
			cc.maybeRetire()
		}
		st.finish(ctxErr(sctx))
	})
	return st, nil
}
