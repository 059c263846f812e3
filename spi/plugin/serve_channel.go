package plugin

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/spi"
	pb "github.com/kiterpc/kite/spi/plugin/proto"
)

// channelDirPrefix names the private directory (mode 0700, in the temp
// directory) that holds a filter plugin's channel socket. The host removes
// a directory of that name left by a plugin that was killed.
const channelDirPrefix = "kite-filter-"

// channelServer is the plugin's end of the filter channel.
type channelServer struct {
	s     *server
	ln    net.Listener
	dir   string
	token []byte
	info  *pb.FilterChannel
	wg    sync.WaitGroup
	// retired once the host connected: the socket and its directory are
	// gone, so nothing else can connect and nothing is left behind
	// however the process ends.
	retired sync.Once
}

func (cs *channelServer) retire() {
	_ = cs.ln.Close()
	_ = os.RemoveAll(cs.dir)
}

// openChannel listens on a Unix socket in a fresh private directory. A
// plugin that cannot (no Unix sockets, a temp path too long for one)
// serves filters on gRPC alone; the host then uses that.
func (s *server) openChannel() {
	dir, err := os.MkdirTemp("", channelDirPrefix)
	if err != nil {
		s.logger.Warn("filter channel unavailable; filters are served on gRPC only", "error", err)
		return
	}
	path := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		os.RemoveAll(dir)
		s.logger.Warn("filter channel unavailable; filters are served on gRPC only", "error", err)
		return
	}
	token := make([]byte, 32)
	_, _ = rand.Read(token)
	cs := &channelServer{s: s, ln: ln, dir: dir, token: token,
		info: &pb.FilterChannel{Version: channelVersion, Network: "unix", Address: path, Token: token}}
	s.channel = cs
	cs.wg.Add(1)
	go cs.accept()
}

// closeChannel stops listening and removes the socket's directory.
func (s *server) closeChannel() {
	if cs := s.channel; cs != nil {
		cs.retired.Do(cs.retire)
	}
}

func (cs *channelServer) accept() {
	defer cs.wg.Done()
	for {
		c, err := cs.ln.Accept()
		if err != nil {
			return
		}
		go cs.serveConn(c)
	}
}

// chanConn is one host connection: its calls in progress by id.
type chanConn struct {
	cs    *channelServer
	w     *frameWriter
	mu    sync.Mutex
	calls map[uint64]*chanCall
	ctx   context.Context
}

func (cs *channelServer) serveConn(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	_ = c.SetReadDeadline(time.Now().Add(helloTimeout))
	if err := checkHello(r, cs.token); err != nil {
		cs.s.logger.Warn("filter channel: refused a connection", "error", err)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	cs.retired.Do(cs.retire)
	ctx, cancel := context.WithCancel(context.Background())
	// Calls whose After never comes end with the connection.
	defer cancel()
	cc := &chanConn{cs: cs, calls: make(map[uint64]*chanCall), ctx: ctx, w: newFrameWriter(c)}
	var hdr [frameHeader]byte
	for {
		id, typ, payload, err := readFrame(r, &hdr)
		if err != nil {
			cc.w.fail(err)
			return
		}
		switch typ {
		case frameBefore:
			cc.before(id, payload)
		case frameAfter:
			cc.after(id, payload)
		case frameCancel:
			cc.mu.Lock()
			fc := cc.calls[id]
			cc.mu.Unlock()
			if fc != nil {
				fc.cancel()
			}
		default:
			cc.fail(id, spi.Errorf(spi.InvalidArgument, "filter channel: unknown frame type %d", typ))
		}
	}
}

// fail answers request id with the implementation's error.
func (cc *chanConn) fail(id uint64, err error) {
	_ = cc.w.send(id, frameFail, func(b []byte) []byte { return putStatus(b, err) })
}

// chanCall is one filter call served on the channel: the filter's
// invoker runs in its own goroutine around a terminal invoker. When the
// filter calls next, the terminal answers the before frame (proceed, the
// metadata as the filter left it) and, unless the filter is before-only,
// waits for the host's after frame; the filter's code after next then
// runs with the real result and its final error answers the after frame.
// A filter that returns without calling next answers the before frame
// with its error (or success) instead.
type chanCall struct {
	cc         *chanConn
	id         uint64
	call       *spi.Call
	meta       []string // the request metadata as the host sent it
	trailer    []string // the trailer as the host sent it in after
	beforeOnly bool
	reached    atomic.Bool
	result     chan result
	afterID    uint64 // set (under cc.mu) when the after frame came
	cancel     context.CancelFunc
	first      *result
}

func (cc *chanConn) before(id uint64, payload []byte) {
	s := cc.cs.s
	r := rd{b: payload}
	h := r.uv()
	call := &spi.Call{Side: spi.Side(r.u8()), Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
	flags := r.u8()
	call.OneWay, call.Stream = flags&flagOneWay != 0, flags&flagStream != 0
	deadline := r.uv()
	call.Method = r.str()
	call.Peer = r.str()
	r.meta(call.Meta)
	if err := r.err(); err != nil {
		cc.fail(id, spi.Errorf(spi.InvalidArgument, "filter channel: bad before frame: %v", err))
		return
	}
	v, err := s.impl(h)
	if err != nil {
		cc.fail(id, spi.Errorf(spi.FailedPrecondition,
			"%s plugin %q: handle %d is not configured (plugin restarted?)", s.entry.Kind, s.entry.Name, h))
		return
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if d, ok := deadlineFromNano(int64(deadline)); ok {
		ctx, cancel = context.WithDeadline(cc.ctx, d)
	} else {
		ctx, cancel = context.WithTimeout(cc.ctx, abandonAfter)
	}
	_, beforeOnly := v.(spi.BeforeOnlyFilter)
	c := &chanCall{cc: cc, id: id, call: call, meta: pairs(call.Meta), beforeOnly: beforeOnly, cancel: cancel}
	if !beforeOnly {
		c.result = make(chan result, 1)
	}
	cc.mu.Lock()
	cc.calls[id] = c
	cc.mu.Unlock()
	cc.w.inflight.Add(1)
	invoke := v.(spi.Filter).Wrap(c.terminal)
	go c.run(ctx, invoke)
}

// beforeAnswer appends a before answer: flags, call id, status, and the
// metadata m if it differs from what the host sent.
func (c *chanCall) beforeAnswer(b []byte, proceed bool, callID uint64, err error, m *spi.Metadata) []byte {
	var flags byte
	if proceed {
		flags |= flagProceed
	}
	changed := !sameMeta(m, c.meta)
	if changed {
		flags |= flagChanged
	}
	b = append(b, flags)
	b = putUv(b, callID)
	b = putStatus(b, err)
	if changed {
		b = putMeta(b, m)
	}
	return b
}

func (c *chanCall) run(ctx context.Context, invoke spi.Invoker) {
	defer c.cancel()
	defer c.cc.w.inflight.Add(-1)
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = c.cc.cs.s.filterPanic(c.call.Method, r)
			}
		}()
		err = invoke(ctx, c.call)
	}()
	cc := c.cc
	cc.mu.Lock()
	_, waiting := cc.calls[c.id]
	delete(cc.calls, c.id)
	afterID := c.afterID
	cc.mu.Unlock()
	switch {
	case !c.reached.Load():
		// Short-circuited (or panicked) before next: that is the answer.
		_ = cc.w.send(c.id, frameBefore, func(b []byte) []byte { return c.beforeAnswer(b, false, 0, err, c.call.Meta) })
	case c.beforeOnly:
	case !waiting && afterID != 0:
		_ = cc.w.send(afterID, frameAfter, func(b []byte) []byte {
			changed := !sameMeta(c.call.Trailer, c.trailer)
			var flags byte
			if changed {
				flags |= flagChanged
			}
			b = append(b, flags)
			b = putStatus(b, err)
			if changed {
				b = putMeta(b, c.call.Trailer)
			}
			return b
		})
	default:
		// The call's context ended (deadline, cancel, lost connection)
		// before its After came: nothing to answer.
	}
}

// terminal is the innermost invoker of a filter served on the channel.
func (c *chanCall) terminal(ctx context.Context, call *spi.Call) error {
	if !c.reached.CompareAndSwap(false, true) {
		// A filter that calls next again (a retrying filter) sees the
		// first result again, as on the gRPC path.
		if c.first != nil {
			return c.first.err
		}
		return spi.Errorf(spi.FailedPrecondition, "filter plugin: next called twice before the first call finished")
	}
	var callID uint64
	if !c.beforeOnly {
		callID = c.id
	}
	if err := c.cc.w.send(c.id, frameBefore, func(b []byte) []byte { return c.beforeAnswer(b, true, callID, nil, call.Meta) }); err != nil {
		return spi.WrapError(spi.Unavailable, err, "filter plugin: the host's connection failed: %v", err)
	}
	if c.beforeOnly {
		return nil
	}
	select {
	case r := <-c.result:
		c.first = &r
		if call.Trailer != nil {
			call.Trailer.CopyFrom(r.tm)
		}
		return r.err
	case <-ctx.Done():
		return ctxError(ctx, "filter plugin: waiting for the call's result")
	}
}

func (cc *chanConn) after(id uint64, payload []byte) {
	r := rd{b: payload}
	_ = r.uv() // handle: the call id names the call
	callID := r.uv()
	res := r.status()
	trailer := &spi.Metadata{}
	r.meta(trailer)
	if err := r.err(); err != nil {
		cc.fail(id, spi.Errorf(spi.InvalidArgument, "filter channel: bad after frame: %v", err))
		return
	}
	cc.mu.Lock()
	c := cc.calls[callID]
	if c != nil && c.result != nil && c.reached.Load() {
		// Taken out: run sees afterID set and answers this frame.
		c.afterID = id
		delete(cc.calls, callID)
	} else {
		c = nil
	}
	cc.mu.Unlock()
	if c == nil {
		cc.fail(id, spi.Errorf(spi.NotFound, "filter plugin: call %d is unknown or expired", callID))
		return
	}
	// The filter finds the trailer on the call it passed to next; what
	// the original call holds when it returns is compared with this to
	// tell the host whether it changed.
	c.trailer = pairs(trailer)
	c.result <- result{err: res, tm: trailer}
}

// filterPanic logs a filter's panic — value and stack, with an incident
// id — and returns what the host (and, on a server, the remote caller)
// gets: a generic Internal error with the id, as a panic value may hold
// anything (a token, a request field).
func (s *server) filterPanic(method string, r any) error {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	s.logger.Error("filter panicked", "method", method, "incident", id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	return spi.Errorf(spi.Internal, "internal error in filter plugin %q (incident %s; details in the plugin's log)", s.entry.Name, id)
}
