package core

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2conn serves gRPC on one accepted connection: a reader goroutine (the
// connection's own) that parses HTTP/2 frames with x/net/http2's Framer
// and HPACK decoder and runs quick unary calls itself (runBatch), and one
// writer goroutine; the writer state (HPACK encoder, the peer's
// flow-control windows, a buffered socket writer flushed when the queue
// runs dry, so answers to concurrent calls share writes) is used by
// whichever of the two holds the writer token (flushFromReader).
type h2conn struct {
	g  *grpcServer
	s  *Server
	sc *serverConn
	fr *http2.Framer
	hd *h2headers // reader only

	mu        sync.Mutex
	streams   map[uint32]*h2stream
	free      []*h2stream // finished unary streams, for reuse (at most maxFreeStreams)
	spare     *h2stream   // one taken from free for the next stream (reader only)
	lastID    uint32
	goingAway bool
	closed    bool

	connUnreturned int // bytes received and not yet returned (reader only)

	// Unary calls run on the reader (runBatch): these are the reader's.
	batch      *h2batch      // complete calls not yet run
	dirty      bool          // items queued for the writer since the last batch
	phase      atomic.Uint64 // the reader's generation << 2 | its phase
	batchStart atomic.Int64  // when the running batch began (unix nanos)
	inBlock    bool          // the Framer is inside a header block (reader only: readFast)

	wmu     sync.Mutex
	wq      []h2item
	wspare  []h2item
	wstop   bool
	wdead   bool
	writing bool  // the writer token: h.w is being used (writer goroutine or reader)
	werr    error // a write failed on the reader; the writer tears down
	wsig    chan struct{}
	wdone   chan struct{}
	w       h2writer // writer goroutine only
}

// h2writer is the writer goroutine's state.
type h2writer struct {
	bw       *bufio.Writer
	fr       *http2.Framer
	hbuf     bytes.Buffer
	henc     *hpack.Encoder
	hcache   [2]hpackCached // response headers, OK trailers (encode)
	hgen     uint64         // bumped when the encoder's dynamic table may have changed
	connWin  int64
	initWin  int64
	maxFrame int
	outs     map[uint32]*h2out
	free     []*h2out // h2outs of ended streams, for reuse
	blocked  []uint32
	done     []func()
	fins     []*h2stream // streams to finish after the flush
}

// h2out is a stream's send side: its window and what waits for it.
type h2out struct {
	win int64
	q   []h2item
}

type itemKind uint8

const (
	kStream     itemKind = iota // response headers / data / trailers of a stream
	kOpen                       // a stream opened: create its send window
	kGone                       // the peer reset a stream: drop what is queued
	kSettings                   // the peer's settings: apply, then ACK
	kPing                       // answer a ping
	kWindow                     // our WINDOW_UPDATE to the peer
	kPeerWindow                 // the peer's WINDOW_UPDATE
	kRST                        // RST_STREAM
	kGoAway                     // GOAWAY
	kRaw                        // frames already encoded (the first SETTINGS)
)

type h2item struct {
	kind     itemKind
	id       uint32
	val      uint32
	ping     [8]byte
	settings []http2.Setting
	hdrs     []hpack.HeaderField // response headers, before data
	data     []byte              // gRPC-framed message bytes
	buf      *[]byte             // pooled storage behind data
	trl      []hpack.HeaderField // trailers, with END_STREAM
	rst      bool                // then RST_STREAM(val)
	st       *h2stream           // send quota to return as data is written
	done     func()              // after the item is written and flushed (or dropped)
	fin      *h2stream           // its finish, likewise (no method value to allocate per call)
}

// drop discards an item that will never be written.
func (it *h2item) drop(w *h2writer) {
	if it.buf != nil {
		protocol.PutBuffer(it.buf)
		it.buf = nil
	}
	if it.st != nil && len(it.data) > 0 {
		it.st.sent(len(it.data))
	}
	it.data = nil
	if it.done != nil {
		if w != nil {
			w.done = append(w.done, it.done)
		} else {
			it.done()
		}
		it.done = nil
	}
	if it.fin != nil {
		if w != nil {
			w.fins = append(w.fins, it.fin)
		} else {
			it.fin.finish()
		}
		it.fin = nil
	}
}

// Response headers shared by every call of the default content type.
var (
	grpcRespHeaders = []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"}}
	grpcOKTrailers  = []hpack.HeaderField{{Name: "grpc-status", Value: "0"}}
)

func respHeaders(ct string) []hpack.HeaderField {
	if ct == "application/grpc" {
		return grpcRespHeaders
	}
	return []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: ct}}
}

// statusFields is the trailer of a finished call: grpc-status, message,
// Kite's error details and the handler's trailer metadata.
func statusFields(dst []hpack.HeaderField, err error, md *spi.Metadata) []hpack.HeaderField {
	if err == nil && md.Len() == 0 {
		if dst == nil {
			return grpcOKTrailers
		}
		return append(dst, grpcOKTrailers...)
	}
	if err == nil {
		dst = append(dst, grpcOKTrailers...)
	} else {
		e := spi.AsError(err)
		dst = append(dst, hpack.HeaderField{Name: "grpc-status", Value: strconv.Itoa(int(e.Code))})
		if e.Message != "" {
			dst = append(dst, hpack.HeaderField{Name: "grpc-message", Value: encodeGRPCMessage(e.Message)})
		}
		if len(e.Details) > 0 {
			var d spi.Metadata
			d.Add("kite-error-details-bin", string(e.Details))
			dst = mdToHeaders(dst, &d)
		}
	}
	return mdToHeaders(dst, md)
}

func (sc *serverConn) serveGRPC(g *grpcServer) {
	h := &h2conn{
		g: g, s: sc.s, sc: sc,
		streams: make(map[uint32]*h2stream),
		wsig:    make(chan struct{}, 1),
		wdone:   make(chan struct{}),
	}
	h.w = h2writer{initWin: 65535, connWin: 65535, maxFrame: 16384, outs: make(map[uint32]*h2out)}
	h.w.bw = bufio.NewWriterSize(sc.conn, 32<<10)
	h.w.fr = http2.NewFramer(h.w.bw, nil)
	h.w.henc = hpack.NewEncoder(&h.w.hbuf)
	h.fr = http2.NewFramer(io.Discard, sc.r.Buffered())
	h.hd = newH2Headers(uint32(sc.s.opts.MaxMetadata)) // header blocks decoded here, not by the Framer
	h.fr.SetReuseFrames()
	sc.h2.Store(h)
	h.batch = new(h2batch)
	sc.noYield = true // the reader runs the calls: see yieldReader
	go h.writeLoop()
	if err := h.start(); err != nil {
		h.end(err)
		return
	}
	h.phase.Store(phaseReading)
	h.serve(0)
}

// serve reads frames until the connection ends, then ends it; unless the
// reading was handed to another goroutine meanwhile (takeOver), which
// then does.
// gen numbers the goroutines that read the connection in turn.
func (h *h2conn) serve(gen uint64) {
	normal := false
	w := newH2Watch(h, gen)
	defer func() {
		// A handler run on this goroutine that called runtime.Goexit:
		// the connection still ends cleanly, unless another goroutine
		// took the reading over.
		if normal {
			return
		}
		err := errors.New("the connection's reader exited (runtime.Goexit in a handler)")
		if st := w.running; st != nil {
			st.finish() // its admission comes back; it has no answer
		}
		if h.phase.CompareAndSwap(gen<<2|phaseInline, gen<<2|phaseDead) {
			h.runLeft()
			h.end(err)
		} else {
			h.sc.close(err) // another goroutine reads: it sees the close and ends the connection
		}
	}()
	err := h.loop(w) // never nil: the connection ended somehow
	normal = true
	if err == errHandedOff {
		return
	}
	h.runLeft()
	h.end(err)
}

// runLeft hands the calls the reader collected and did not run (it
// stopped at a broken frame or a closed socket) to workers: each still
// ends and gives its admission back (its answer is dropped if the
// connection is gone).
func (h *h2conn) runLeft() {
	b := h.batch
	for {
		i := int(b.next.Add(1)) - 1
		if i >= len(b.calls) {
			return
		}
		h.g.workers.submit(b.calls[i])
	}
}

// end ends the connection after the reading stopped with err.
func (h *h2conn) end(err error) {
	sc := h.sc
	h.shutdown(err)
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			sc.s.log.Warn("closing gRPC connection after a protocol error", "peer", sc.peer, "error", err)
		} else {
			sc.s.log.Debug("gRPC connection ended", "peer", sc.peer, "error", err)
		}
	}
	sc.closeRaw(err)
}

// start reads the client preface and sends the server's settings.
func (h *h2conn) start() error {
	var pre [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(h.sc.r.Buffered(), pre[:]); err != nil {
		return err
	}
	h.sc.lastRead.Store(time.Now().UnixNano())
	g := h.g
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	_ = fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: uint32(h.s.opts.MaxConnConcurrency)},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(g.opts.StreamWindow)},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: uint32(h.s.opts.MaxMetadata)},
	)
	if g.opts.ConnWindow > 65535 {
		_ = fr.WriteWindowUpdate(0, uint32(g.opts.ConnWindow-65535))
	}
	h.enqueue(h2item{kind: kRaw, data: b.Bytes()})
	if h.sc.goaway.Load() { // Shutdown began before this connection was known as gRPC
		h.goAway()
	}
	return nil
}

// loop reads frames until the connection ends (or the reading is handed
// to another goroutine: errHandedOff). Complete unary calls are collected
// and run here, on the reader, once the next frame is not in the read
// buffer yet (runBatch).
func (h *h2conn) loop(w *h2watch) error {
	for {
		if n := len(h.batch.calls); (n > 0 || h.dirty) && (n >= maxReaderBatch || !h.frameBuffered()) {
			if !h.runBatch(w) {
				return errHandedOff
			}
		}
		if done, err := h.readFast(); done || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		f, err := h.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				h.resetStream(se.StreamID, se.Code, spi.Errorf(spi.Internal, "HTTP/2 stream error: %v", se))
				continue
			}
			return h.connFailed(err)
		}
		h.sc.lastRead.Store(h.sc.readAt)
		switch f := f.(type) {
		case *http2.HeadersFrame:
			h.inBlock = !f.HeadersEnded()
			h.hd.begin(f.StreamID, f.StreamEnded())
			if err := h.headerFragment(f.HeaderBlockFragment(), f.HeadersEnded()); err != nil {
				return err
			}
		case *http2.ContinuationFrame: // the Framer checks it follows its HEADERS
			h.inBlock = !f.HeadersEnded()
			if err := h.headerFragment(f.HeaderBlockFragment(), f.HeadersEnded()); err != nil {
				return err
			}
		case *http2.DataFrame:
			h.onData(f.StreamID, f.Data(), int(f.Length), f.StreamEnded())
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			var set []http2.Setting
			_ = f.ForeachSetting(func(s http2.Setting) error {
				if err := s.Valid(); err != nil {
					return err
				}
				set = append(set, s)
				return nil
			})
			h.post(h2item{kind: kSettings, settings: set})
		case *http2.PingFrame:
			if !f.IsAck() {
				h.post(h2item{kind: kPing, ping: f.Data})
			}
		case *http2.WindowUpdateFrame:
			h.post(h2item{kind: kPeerWindow, id: f.StreamID, val: f.Increment})
		case *http2.RSTStreamFrame:
			h.onReset(f.StreamID)
		case *http2.GoAwayFrame:
			// The client stops opening streams; those in progress finish.
		default:
			// PRIORITY, unknown extension frames: ignored as RFC 9113 allows.
		}
	}
}

// connFailed ends the connection after err: a connection error is
// answered with GOAWAY and its code first.
func (h *h2conn) connFailed(err error) error {
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		detail := ce.Error()
		if d := h.fr.ErrorDetail(); d != nil {
			detail = d.Error()
		}
		h.enqueue(h2item{kind: kGoAway, val: uint32(ce), data: []byte(detail)})
		h.stopWriter()
	}
	return err
}

// headerFragment decodes a fragment of a header block and, at its end,
// handles the block.
func (h *h2conn) headerFragment(frag []byte, ended bool) error {
	if err := h.hd.write(frag); err != nil {
		return h.connFailed(err)
	}
	if !ended {
		return nil
	}
	blk, err := h.hd.end()
	if err != nil {
		var se http2.StreamError
		if errors.As(err, &se) {
			h.resetStream(se.StreamID, se.Code, spi.Errorf(spi.Internal, "HTTP/2 stream error: %v", se))
			return nil
		}
		return h.connFailed(err)
	}
	h.onHeaders(blk)
	return nil
}

// onHeaders opens a stream, or ends one with the client's trailers.
func (h *h2conn) onHeaders(f *headerBlock) {
	id := f.StreamID
	h.mu.Lock()
	if n := len(h.free); h.spare == nil && n > 0 {
		h.spare, h.free[n-1] = h.free[n-1], nil
		h.free = h.free[:n-1]
	}
	if st := h.streams[id]; st != nil {
		h.mu.Unlock()
		if f.StreamEnded() {
			st.onEnd()
		}
		return
	}
	if id <= h.lastID || id%2 == 0 {
		h.mu.Unlock()
		h.enqueue(h2item{kind: kRST, id: id, val: uint32(http2.ErrCodeStreamClosed)})
		return
	}
	h.lastID = id
	away := h.goingAway || h.closed
	h.mu.Unlock()
	if away {
		h.enqueue(h2item{kind: kRST, id: id, val: uint32(http2.ErrCodeRefusedStream)})
		h.rejected(f.PseudoValue("path"), spi.ReasonShuttingDown, spi.Errorf(spi.Unavailable, "server shutting down (REFUSED_STREAM); call was not processed"))
		return
	}
	ct := "application/grpc"
	reason := spi.ReasonBadRequest
	refuse := func(err error) {
		h.rejected(f.PseudoValue("path"), reason, err)
		h.answerEarly(id, ct, !f.StreamEnded(), err)
	}
	if f.Truncated {
		refuse(spi.Errorf(spi.ResourceExhausted, "request headers exceed max_metadata (%d bytes)", h.s.opts.MaxMetadata))
		return
	}
	if f.PseudoValue("method") != "POST" {
		h.answerHTTP(id, "405", "gRPC requires POST")
		return
	}
	var codec spi.Codec
	var known bool
	for _, hf := range f.RegularFields() {
		if hf.Name == "content-type" {
			ct = hf.Value
		}
	}
	codec, known = codecForContentType(h.s.table, ct)
	if !known {
		h.answerHTTP(id, "415", "content-type "+ct+" is not gRPC")
		return
	}
	if codec == nil {
		refuse(spi.Errorf(spi.Unimplemented, "content-type %s: codec not linked into this binary", ct))
		return
	}
	st := h.spare
	if st != nil {
		h.spare = nil
	} else {
		st = new(h2stream)
	}
	*st = h2stream{c: h, id: id, codec: codec, ct: ct, recvEnded: f.StreamEnded(), u: new(h2user)}
	st.msgs = st.msg1[:0]
	st.halfClosed.Store(st.recvEnded)
	path := f.PseudoValue("path")
	var acceptEnc string
	for _, hf := range f.RegularFields() {
		switch hf.Name {
		case "grpc-timeout":
			d, err := parseGRPCTimeout(hf.Value)
			if err != nil {
				refuse(spi.Errorf(spi.InvalidArgument, "%v", err))
				return
			}
			st.timeout, st.hasTimeout = d, true
		case "grpc-encoding":
			if hf.Value != "identity" {
				st.comp = compressorByName(h.s.table, hf.Value)
				if st.comp == nil {
					refuse(spi.Errorf(spi.Unimplemented, "grpc-encoding %q is not supported (linked: identity and Kite's compressors)", hf.Value))
					return
				}
			}
		case "grpc-accept-encoding":
			acceptEnc = hf.Value
		default:
			if reservedHeader(hf.Name) {
				continue
			}
			if err := headerToMD(&st.u.md, hf.Name, hf.Value); err != nil {
				refuse(spi.Errorf(spi.InvalidArgument, "%v", err))
				return
			}
		}
	}
	// The answer goes back in the request's encoding when the client
	// says it reads it (grpc-go does for every compressor it links).
	st.compResp = st.comp != nil && acceptsEncoding(acceptEnc, st.comp.Name())
	m := h.g.lookup(path)
	if m == nil {
		reason = spi.ReasonUnknownMethod
		// The Kite name and the gRPC path are the same name (docs/GRPC.md,
		// "Method names"): say it once, as the path the client sent when
		// it is not a method name at all.
		if name, ok := GRPCMethodName(path); ok {
			refuse(spi.Errorf(spi.Unimplemented, "unknown method %q", name))
		} else {
			refuse(spi.Errorf(spi.Unimplemented, "malformed gRPC path %q: want /package.Service/Method", path))
		}
		return
	}
	st.m = m
	if st.hasTimeout && st.timeout <= 0 {
		reason = spi.ReasonDeadline
		refuse(spi.Errorf(spi.DeadlineExceeded, "deadline expired before the call started"))
		return
	}
	s := h.s
	// The server's own admission, as for a Kite call: max_concurrency,
	// max_conn_concurrency and the peer's share (max_peer_share, fair
	// admission near the limit). finish gives the slot back.
	if e := h.sc.admit(); e != nil {
		reason = spi.ReasonConcurrency
		refuse(e)
		return
	}
	if st.hasTimeout {
		st.ctx, st.cancel = context.WithTimeout(context.Background(), st.timeout)
	} else {
		st.ctx, st.cancel = context.WithCancel(context.Background())
	}
	st.recvWin = int64(h.g.opts.StreamWindow)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		st.finish()
		return
	}
	h.streams[id] = st
	h.mu.Unlock()
	h.open(id)
	if m.stream != nil {
		st.quotaSig = make(chan struct{}, 1) // only a stream's sends wait for quota
		st.kst = newStream(st.ctx, st.cancel, spi.ServerSide, id, m.full, st, codec, nil, 0, s.opts.StreamWindow)
		// As on Kite's protocol: unread messages are bounded per stream
		// and charged to the body budget until Recv decodes them, and a
		// stream on which nothing moves for stream_idle_timeout ends.
		st.kst.limitBuffer(h.sc, s.lim.streamBuf)
		st.kst.watchIdle(s.opts.StreamIdleTimeout)
		go st.runStream()
		if st.recvEnded {
			st.mu.Lock()
			st.deliverLocked()
			st.mu.Unlock()
		}
		return
	}
	if st.recvEnded {
		st.dispatch()
	}
}

// answerEarly ends a stream that was never admitted with a gRPC status
// (a Trailers-Only response), and resets it if the client is still
// sending.
func (h *h2conn) answerEarly(id uint32, ct string, open bool, err error) {
	trl := statusFields(append([]hpack.HeaderField(nil), respHeaders(ct)...), err, nil)
	h.open(id)
	h.enqueue(h2item{kind: kStream, id: id, trl: trl, rst: open, val: uint32(http2.ErrCodeNo)})
}

// answerHTTP ends a stream with a plain HTTP status: the request is not
// gRPC at all (wrong method or content type).
func (h *h2conn) answerHTTP(id uint32, status, msg string) {
	h.open(id)
	h.enqueue(h2item{kind: kStream, id: id, trl: []hpack.HeaderField{
		{Name: ":status", Value: status}, {Name: "content-type", Value: "text/plain"},
		{Name: "grpc-status", Value: strconv.Itoa(int(spi.Internal))}, {Name: "grpc-message", Value: encodeGRPCMessage(msg)},
	}, rst: true, val: uint32(http2.ErrCodeNo)})
}

// readFast reads the next frame itself when it is one of the two a
// unary call is made of, in their plain form, and whole in the read
// buffer: an unpadded DATA frame, or a HEADERS frame without padding or
// priority that ends its header block. It parses the frame where it lies
// in the buffer (the Framer copies every payload and allocates each
// HEADERS frame it returns) and reports whether it did; anything else,
// including every frame inside a header block the Framer is following
// and every malformed header, is left to the Framer, which reads it from
// the same buffer with all of its checks.
func (h *h2conn) readFast() (bool, error) {
	if h.inBlock {
		return false, nil
	}
	r := h.sc.r
	hdr, err := r.Peek(frameHeaderLen)
	if err != nil {
		return false, err // the connection ended (mid-frame or not)
	}
	n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	typ, flags := http2.FrameType(hdr[3]), http2.Flags(hdr[4])
	id := binary.BigEndian.Uint32(hdr[5:]) & (1<<31 - 1)
	if id == 0 || n > r.Size()-frameHeaderLen {
		return false, nil
	}
	switch {
	case typ == http2.FrameData && flags&http2.FlagDataPadded == 0:
	case typ == http2.FrameHeaders && flags&(http2.FlagHeadersPadded|http2.FlagHeadersPriority) == 0 && flags.Has(http2.FlagHeadersEndHeaders):
	default:
		return false, nil
	}
	b, err := r.Peek(frameHeaderLen + n)
	if err != nil {
		return false, err
	}
	h.sc.lastRead.Store(h.sc.readAt)
	p := b[frameHeaderLen:]
	if typ == http2.FrameData {
		h.onData(id, p, n, flags.Has(http2.FlagDataEndStream))
	} else {
		h.hd.begin(id, flags.Has(http2.FlagHeadersEndStream))
		if err := h.headerFragment(p, true); err != nil {
			return true, err
		}
	}
	_, _ = r.Discard(frameHeaderLen + n) // buffered: cannot fail
	return true, nil
}

// Reader-run calls. A gRPC client puts every call on one connection,
// and handing each call to a worker goroutine and each answer to the
// writer costs two scheduler round trips (a thread wake-up, often a
// futex and a steal) per call: more than the rest of the call on a
// loaded machine. So the reader collects the complete unary calls it
// parses and, when the next frame is not in its buffer yet (it would
// otherwise block in read(2)), runs them itself and writes their answers
// (flushFromReader): a read, the calls, one write, with no hand-off.
// Three bounds keep a slow call from holding up the connection:
//   - a method whose calls average more than slowCall (method.slow) runs
//     on workers;
//   - after inlineBudget spent on a batch, its remaining calls go to
//     workers, so CPU-heavy calls still spread over cores;
//   - a call (or a write) that takes longer than takeoverAfter, blocked
//     or descheduled, gets the reading handed to a new goroutine
//     (takeOver): the connection goes on, and this one finishes its
//     call and exits.
type h2batch struct {
	calls []*h2stream
	next  atomic.Int32 // claimed by the reader, or by takeOver for workers
}

// The reader's phase, in the low two bits of h2conn.phase.
const (
	phaseReading = iota + 1 // the reader reads frames
	phaseInline             // the reader runs a batch or writes
	phaseDead               // the reader exited abnormally (runtime.Goexit)
)

const (
	maxReaderBatch = 64
	inlineBudget   = 100 * time.Microsecond
	takeoverAfter  = time.Millisecond
)

// errHandedOff ends a reader whose connection another goroutine reads now.
var errHandedOff = errors.New("reading handed to another goroutine")

// runBatch runs the collected calls and writes what is queued; false
// when the reading was handed to another goroutine meanwhile (this one
// must stop reading).
func (h *h2conn) runBatch(w *h2watch) bool {
	b := h.batch
	h.dirty = false
	start := monoNow()
	h.batchStart.Store(start)
	// From here takeOver may own h.batch: this goroutine uses its own b.
	h.phase.Store(w.gen<<2 | phaseInline)
	w.arm()
	t := start
	for {
		i := int(b.next.Add(1)) - 1
		if i >= len(b.calls) {
			break
		}
		st := b.calls[i]
		m := st.m
		if m.slow() || t-start > int64(inlineBudget) {
			h.g.workers.submit(st)
			continue
		}
		st.inline = true
		w.running = st
		st.runUnary()
		w.running = nil
		now := monoNow()
		m.observe(now - t)
		t = now
	}
	h.flushFromReader()
	if !h.phase.CompareAndSwap(w.gen<<2|phaseInline, w.gen<<2|phaseReading) {
		return false // gen+1 reads now
	}
	clear(b.calls)
	b.calls = b.calls[:0]
	b.next.Store(0)
	return true
}

// h2watch is one reader goroutine's watchdog: a timer that, while a
// batch runs, fires at most every takeoverAfter and hands the reading on
// when the batch has run that long. It is armed by the first batch after
// it fired, not per batch: arming a timer can wake the netpoller (a
// write(2) to its eventfd), which cost more than the batch saved.
type h2watch struct {
	h       *h2conn
	gen     uint64
	armed   atomic.Bool
	t       *time.Timer
	running *h2stream // the call running on the reader (this goroutine's own)
}

func newH2Watch(h *h2conn, gen uint64) *h2watch {
	w := &h2watch{h: h, gen: gen}
	w.t = time.AfterFunc(time.Hour, w.fire)
	w.t.Stop()
	return w
}

// arm sets the timer unless it is set.
func (w *h2watch) arm() {
	if !w.armed.Load() && w.armed.CompareAndSwap(false, true) {
		w.t.Reset(takeoverAfter)
	}
}

func (w *h2watch) fire() {
	h := w.h
	w.armed.Store(false) // a batch starting from here arms it again
	if h.phase.Load() != w.gen<<2|phaseInline {
		return // reading (idle or busy), or another goroutine reads now
	}
	ran := time.Duration(monoNow() - h.batchStart.Load())
	if ran < takeoverAfter { // a later batch than the one that armed it
		if w.armed.CompareAndSwap(false, true) {
			w.t.Reset(takeoverAfter - ran)
		}
		return
	}
	h.takeOver(w.gen)
}

// takeOver hands the reading on from a batch that outlasted
// takeoverAfter: the calls the reader has not started go to workers and
// a new goroutine (the timer's) reads on.
func (h *h2conn) takeOver(gen uint64) {
	if !h.phase.CompareAndSwap(gen<<2|phaseInline, (gen+1)<<2|phaseInline) {
		return // the batch ended meanwhile
	}
	h.runLeft()
	h.batch = new(h2batch)
	h.phase.Store((gen+1)<<2 | phaseReading)
	h.serve(gen + 1) // AfterFunc runs this on a goroutine of its own
}

// post queues an item from the reader: it is written at the reader's
// next batch, with the answers.
func (h *h2conn) post(it h2item) {
	if h.queue(it) {
		h.dirty = true
	}
}

// frameBuffered reports whether the read buffer holds a whole frame.
func (h *h2conn) frameBuffered() bool {
	r := h.sc.r
	n := r.BufferedLen()
	if n < frameHeaderLen {
		return false
	}
	hdr, _ := r.Peek(frameHeaderLen)
	return n >= frameHeaderLen+(int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2]))
}

// frameHeaderLen is the size of an HTTP/2 frame header (RFC 9113 §4.1).
const frameHeaderLen = 9

// onData feeds the payload p of a DATA frame of n bytes (padding
// included, for flow control) to stream id.
func (h *h2conn) onData(id uint32, p []byte, n int, ended bool) {
	h.connUnreturned += n
	if h.connUnreturned >= h.g.opts.ConnWindow/16 {
		h.post(h2item{kind: kWindow, id: 0, val: uint32(h.connUnreturned)})
		h.connUnreturned = 0
	}
	h.mu.Lock()
	st := h.streams[id]
	h.mu.Unlock()
	if st == nil {
		return // a stream already answered or reset: late data
	}
	st.onData(p, n, ended)
}

// onReset handles the client's RST_STREAM: the call is cancelled and
// nothing more is sent for it.
func (h *h2conn) onReset(id uint32) {
	h.mu.Lock()
	st := h.streams[id]
	h.mu.Unlock()
	h.enqueue(h2item{kind: kGone, id: id})
	if st != nil {
		st.abort(spi.Errorf(spi.Canceled, "canceled by the caller (RST_STREAM)"))
	}
}

// resetStream answers a stream-level protocol error.
func (h *h2conn) resetStream(id uint32, code http2.ErrCode, err error) {
	h.mu.Lock()
	st := h.streams[id]
	h.mu.Unlock()
	h.enqueue(h2item{kind: kGone, id: id})
	h.enqueue(h2item{kind: kRST, id: id, val: uint32(code)})
	if st != nil {
		st.abort(err)
	}
}

// goAway starts a graceful shutdown of the connection: streams the
// client opened so far finish, later ones are refused.
func (h *h2conn) goAway() {
	h.mu.Lock()
	if h.goingAway || h.closed {
		h.mu.Unlock()
		return
	}
	h.goingAway = true
	last := h.lastID
	h.mu.Unlock()
	// Wait (at most 200 ms) until it is on the wire: a Shutdown with nothing in
	// flight closes connections right after, and the client should learn
	// why from the GOAWAY rather than from a reset.
	sent := make(chan struct{})
	h.enqueue(h2item{kind: kGoAway, id: last, val: uint32(http2.ErrCodeNo), data: []byte("server shutting down"), done: func() { close(sent) }})
	t := time.NewTimer(200 * time.Millisecond) // per connection: a stuck peer must not stall Shutdown long
	defer t.Stop()
	select {
	case <-sent:
	case <-t.C:
	}
}

// shutdown ends every stream of a connection that stopped reading and
// stops the writer once it has written what was queued.
func (h *h2conn) shutdown(reason error) {
	h.mu.Lock()
	h.closed = true
	streams := h.streams
	h.streams = map[uint32]*h2stream{}
	h.mu.Unlock()
	for _, st := range streams {
		st.abort(spi.Errorf(spi.Unavailable, "connection closed: %v", reason))
	}
	h.stopWriter()
	// The writer puts out what is queued (a GOAWAY saying why the
	// connection ends) before the socket closes, unless the peer does not
	// read: then closing the socket makes its write return. Either way
	// wait for it, so every queued item's done has run.
	t := time.NewTimer(writerGrace)
	select {
	case <-h.wdone:
	case <-t.C:
	}
	t.Stop()
	h.sc.close(reason)
	<-h.wdone
}

// writerGrace bounds how long a closing connection waits for its writer
// to flush before closing the socket under it.
const writerGrace = 100 * time.Millisecond

func (h *h2conn) stopWriter() {
	h.wmu.Lock()
	h.wstop = true
	h.wmu.Unlock()
	h.wakeWriter()
}

func (h *h2conn) enqueue(it h2item) {
	if h.queue(it) {
		h.wakeWriter()
	}
}

// open queues a new stream's send window without waking the writer: it
// only has to be there before the stream's first answer, which wakes it
// (a wake per request costs a scheduler round trip on a busy connection).
func (h *h2conn) open(id uint32) { h.queue(h2item{kind: kOpen, id: id}) }

// queue appends it to the writer's queue; false when the writer is gone
// (it was dropped).
func (h *h2conn) queue(it h2item) bool {
	h.wmu.Lock()
	if h.wdead {
		h.wmu.Unlock()
		it.drop(nil)
		return false
	}
	h.wq = append(h.wq, it)
	h.wmu.Unlock()
	return true
}

func (h *h2conn) wakeWriter() {
	select {
	case h.wsig <- struct{}{}:
	default:
	}
}

// writeLoop writes queued items, flushing when the queue runs dry. The
// reader writes too, between reads (flushFromReader): whoever holds the
// writer token (h.writing) owns h.w.
func (h *h2conn) writeLoop() {
	defer close(h.wdone)
	for {
		<-h.wsig
		// Let the goroutines about to queue answers run first, so they
		// land in this batch (as Kite's batchWriter does): on a busy
		// connection one write(2) carries many calls' answers.
		runtime.Gosched()
		h.wmu.Lock()
		if h.writing { // the reader is writing; it wakes us if it leaves work
			h.wmu.Unlock()
			continue
		}
		h.writing = true
		err := h.werr
		h.wmu.Unlock()
		stop := false
		if err == nil {
			stop, err = h.drain()
		}
		h.wmu.Lock()
		h.writing = false
		if err != nil || stop || h.wstop {
			h.teardownLocked(err)
			return
		}
		h.wmu.Unlock()
	}
}

// flushFromReader writes what the queue holds on the reader's goroutine,
// unless the writer goroutine is at it: the answers to calls the reader
// ran inline go out without waking another goroutine.
func (h *h2conn) flushFromReader() {
	h.wmu.Lock()
	if h.writing || h.wdead || h.wstop || h.werr != nil {
		h.wmu.Unlock()
		h.wakeWriter()
		return
	}
	h.writing = true
	h.wmu.Unlock()
	stop, err := h.drain()
	h.wmu.Lock()
	h.writing = false
	if err != nil {
		h.werr = err
	}
	// The writer goroutine, woken while this one wrote, left what came
	// meanwhile (items, a stop) to this check.
	wake := err != nil || stop || h.wstop || len(h.wq) > 0
	h.wmu.Unlock()
	if wake {
		h.wakeWriter()
	}
}

// drain writes queued items until the queue is empty and flushes; stop
// reports that the writer was told to stop. The caller holds the token.
func (h *h2conn) drain() (stop bool, err error) {
	w := &h.w
	for err == nil {
		h.wmu.Lock()
		items := h.wq
		if len(items) > 0 {
			h.wq = h.wspare[:0]
			h.wspare = nil
		}
		stop = h.wstop
		h.wmu.Unlock()
		if len(items) == 0 {
			if err = w.bw.Flush(); err == nil {
				w.runDone()
			}
			if stop || err != nil {
				return stop, err
			}
			// Another item may have come between the swap and flush.
			h.wmu.Lock()
			more := len(h.wq) > 0
			h.wmu.Unlock()
			if !more {
				return false, nil
			}
			continue
		}
		for i := range items {
			if err == nil {
				err = w.handle(&items[i])
			} else {
				items[i].drop(w)
			}
		}
		clear(items)
		h.wmu.Lock()
		h.wspare = items[:0]
		h.wmu.Unlock()
	}
	return stop, err
}

// teardownLocked ends the writer: what is still queued is dropped (its
// done and finish run) and, after an error, the connection is closed.
// Called with h.wmu held, which it releases.
func (h *h2conn) teardownLocked(err error) {
	w := &h.w
	h.wdead = true
	rest := h.wq
	h.wq = nil
	h.wmu.Unlock()
	for i := range rest {
		rest[i].drop(w)
	}
	for _, o := range w.outs {
		for i := range o.q {
			o.q[i].drop(w)
		}
	}
	w.outs = nil
	w.runDone()
	if err != nil {
		h.sc.close(err)
	}
}

func (w *h2writer) runDone() {
	for i, f := range w.done {
		f()
		w.done[i] = nil
	}
	w.done = w.done[:0]
	for i, st := range w.fins {
		st.finish()
		w.fins[i] = nil
	}
	w.fins = w.fins[:0]
}

func (w *h2writer) handle(it *h2item) error {
	switch it.kind {
	case kRaw:
		_, err := w.bw.Write(it.data)
		return err
	case kOpen:
		var o *h2out
		if n := len(w.free); n > 0 {
			o, w.free = w.free[n-1], w.free[:n-1]
		} else {
			o = new(h2out)
		}
		*o = h2out{win: w.initWin}
		w.outs[it.id] = o
	case kGone:
		if o := w.outs[it.id]; o != nil {
			for i := range o.q {
				o.q[i].drop(w)
			}
			w.closeOut(it.id, o)
		}
	case kSettings:
		for _, s := range it.settings {
			switch s.ID {
			case http2.SettingInitialWindowSize:
				delta := int64(s.Val) - w.initWin
				w.initWin = int64(s.Val)
				for _, o := range w.outs {
					o.win += delta
				}
			case http2.SettingMaxFrameSize:
				w.maxFrame = int(s.Val)
			case http2.SettingHeaderTableSize:
				w.setTableLimit(s.Val)
			}
		}
		if err := w.fr.WriteSettingsAck(); err != nil {
			return err
		}
		return w.unblock()
	case kPing:
		return w.fr.WritePing(true, it.ping)
	case kWindow:
		return w.fr.WriteWindowUpdate(it.id, it.val)
	case kPeerWindow:
		if it.id == 0 {
			w.connWin += int64(it.val)
		} else if o := w.outs[it.id]; o != nil {
			o.win += int64(it.val)
		}
		return w.unblock()
	case kRST:
		return w.fr.WriteRSTStream(it.id, http2.ErrCode(it.val))
	case kGoAway:
		if it.done != nil {
			w.done = append(w.done, it.done)
			it.done = nil
		}
		return w.fr.WriteGoAway(it.id, http2.ErrCode(it.val), it.data)
	case kStream:
		o := w.outs[it.id]
		if o == nil { // reset by the peer meanwhile
			it.drop(w)
			return nil
		}
		if len(o.q) > 0 {
			o.q = append(o.q, *it)
			return nil
		}
		blocked, err := w.write(it.id, o, it)
		if err != nil || !blocked {
			return err
		}
		o.q = append(o.q, *it)
		w.blocked = append(w.blocked, it.id)
	}
	return nil
}

// write sends as much of a stream item as the windows allow; blocked
// reports data left over (it is trimmed to what is left).
func (w *h2writer) write(id uint32, o *h2out, it *h2item) (blocked bool, err error) {
	if it.hdrs != nil {
		if err := w.headers(id, it.hdrs, false); err != nil {
			return false, err
		}
		it.hdrs = nil
	}
	for len(it.data) > 0 {
		n := int64(min(len(it.data), w.maxFrame))
		n = min(n, w.connWin, o.win)
		if n <= 0 {
			return true, nil
		}
		if err := w.fr.WriteData(id, false, it.data[:n]); err != nil {
			return false, err
		}
		it.data = it.data[n:]
		w.connWin -= n
		o.win -= n
		if it.st != nil {
			it.st.sent(int(n))
		}
	}
	if it.buf != nil {
		protocol.PutBuffer(it.buf)
		it.buf = nil
	}
	if it.trl != nil {
		if err := w.headers(id, it.trl, true); err != nil {
			return false, err
		}
		w.closeOut(id, o)
	}
	if it.rst {
		if err := w.fr.WriteRSTStream(id, http2.ErrCode(it.val)); err != nil {
			return false, err
		}
		w.closeOut(id, o)
	}
	if it.done != nil {
		w.done = append(w.done, it.done)
		it.done = nil
	}
	if it.fin != nil {
		w.fins = append(w.fins, it.fin)
		it.fin = nil
	}
	return false, nil
}

// closeOut forgets a stream's send side; its h2out is kept for the next
// stream (reset when taken, so what a caller still does to it is moot).
func (w *h2writer) closeOut(id uint32, o *h2out) {
	if w.outs[id] == o {
		delete(w.outs, id)
		if len(w.free) < 256 {
			w.free = append(w.free, o)
		}
	}
}

// unblock writes what waited for window, in the order streams blocked.
func (w *h2writer) unblock() error {
	if len(w.blocked) == 0 || w.connWin <= 0 {
		return nil
	}
	keep := w.blocked[:0]
	for _, id := range w.blocked {
		o := w.outs[id]
		if o == nil {
			continue
		}
		for len(o.q) > 0 {
			blocked, err := w.write(id, o, &o.q[0])
			if err != nil {
				return err
			}
			if blocked {
				break
			}
			o.q[0] = h2item{}
			o.q = o.q[1:]
			if w.outs[id] != o { // ended (trailers or reset): the rest is dropped
				for i := range o.q {
					o.q[i].drop(w)
				}
				o.q = nil
			}
		}
		if len(o.q) > 0 {
			keep = append(keep, id)
		}
	}
	clear(w.blocked[len(keep):])
	w.blocked = keep
	return nil
}

// encode returns the HPACK block of fields. The blocks of every call's
// response headers and OK trailers are replayed from a cache while the
// encoder's dynamic table has not changed since they were recorded: once
// their fields are in the table they encode as the same few index bytes,
// and the encoder's work (a third of the writer's own CPU) is skipped.
func (w *h2writer) encode(fields []hpack.HeaderField) ([]byte, error) {
	var c *hpackCached
	switch {
	case sameFields(fields, grpcRespHeaders):
		c = &w.hcache[0]
	case sameFields(fields, grpcOKTrailers):
		c = &w.hcache[1]
	}
	if c != nil && c.b != nil && c.gen == w.hgen {
		return c.b, nil
	}
	w.hbuf.Reset()
	for _, f := range fields {
		if err := w.henc.WriteField(f); err != nil {
			return nil, err
		}
	}
	blk := w.hbuf.Bytes()
	if !allIndexed(blk, len(fields)) {
		// A literal may have entered (or a size update evicted from) the
		// dynamic table, which moves indexes: every cached block is stale.
		w.hgen++
	} else if c != nil {
		c.b, c.gen = append(c.b[:0], blk...), w.hgen
	}
	return blk, nil
}

// setTableLimit applies the peer's SETTINGS_HEADER_TABLE_SIZE.
func (w *h2writer) setTableLimit(v uint32) {
	w.henc.SetMaxDynamicTableSizeLimit(v)
	w.hgen++
}

// hpackCached is a recorded header block and the table generation it is
// valid for.
type hpackCached struct {
	b   []byte
	gen uint64
}

// sameFields reports whether a and b are the same static field list.
func sameFields(a, b []hpack.HeaderField) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}

// allIndexed reports whether blk encodes n fields as n one-byte indexed
// representations (RFC 7541 §6.1), which leave the dynamic table as it was.
func allIndexed(blk []byte, n int) bool {
	if len(blk) != n {
		return false
	}
	for _, b := range blk {
		if b&0x80 == 0 || b == 0xff {
			return false
		}
	}
	return true
}

// headers writes a header block, split into CONTINUATION frames beyond
// the peer's max frame size.
func (w *h2writer) headers(id uint32, fields []hpack.HeaderField, end bool) error {
	blk, err := w.encode(fields)
	if err != nil {
		return err
	}
	first := true
	for first || len(blk) > 0 {
		n := min(len(blk), w.maxFrame)
		frag := blk[:n]
		blk = blk[n:]
		var err error
		if first {
			err = w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: len(blk) == 0})
			first = false
		} else {
			err = w.fr.WriteContinuation(id, len(blk) == 0, frag)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// h2stream is one gRPC call on a connection. It also stands in for the
// connection of a Kite *Stream (frameSender), translating the Kite
// stream's frames to HTTP/2.
//
// A unary call's h2stream is reused by its connection once the call has
// finished (h2conn.free): nothing outside this file keeps one. What filters and the
// handler get (the context, *spi.Call, the request metadata) is in u,
// allocated per call, since they may keep it.
type h2stream struct {
	c          *h2conn
	id         uint32
	inline     bool // run by the reader (its answer is flushed by the reader)
	m          *method
	codec      spi.Codec
	comp       spi.Compressor
	compResp   bool // answer in comp too (the client accepts it)
	ct         string
	timeout    time.Duration
	hasTimeout bool
	ctx        context.Context
	cancel     context.CancelFunc
	u          *h2user

	finished atomic.Bool
	hdrSent  atomic.Bool
	// halfClosed mirrors recvEnded for endByServer, which may run with
	// mu held (Stream.abort from deliver).
	halfClosed atomic.Bool
	// endMu orders a stream's response items: headers go with the first
	// item, nothing follows the trailers (ended).
	endMu    sync.Mutex
	ended    bool
	queued   atomic.Int64 // bytes handed to the writer, not yet written
	quotaSig chan struct{}

	mu         sync.Mutex
	recvEnded  bool
	endSent    bool // the Kite stream got its end marker
	dispatched bool
	aborted    bool
	recvErr    error
	recvWin    int64 // what the peer may still send on this stream
	unreturned int   // bytes received and not yet returned to the peer
	held       int   // bytes of complete messages not yet consumed
	charged    int64 // body budget held: messages being assembled or queued here (a unary request: until finish)
	// message assembly
	pre    [5]byte
	preN   int
	cur    []byte
	curBP  *[]byte
	curN   int
	curLen int
	// complete messages: unary keeps its one request here; a stream
	// queues what the Kite stream's window cannot take yet
	msgs        []grpcMsg
	msg1        [1]grpcMsg // msgs' first storage: a unary call needs no more
	outstanding int        // delivered to the Kite stream, not consumed
	sizes       []int      // wire bytes of delivered messages, in order
	kst         *Stream
}

// h2user is the part of a call that filters and the handler see.
type h2user struct {
	call spi.Call
	hctx handlerCtx
	md   spi.Metadata
}

type grpcMsg struct {
	b    []byte
	bp   *[]byte // pooled storage of a unary request (returned after decoding)
	flag byte
	wire int
}

// onData parses gRPC length-prefixed messages out of a DATA payload.
func (st *h2stream) onData(p []byte, frameLen int, end bool) {
	c := st.c
	maxMsg := c.g.opts.MaxMessage
	st.mu.Lock()
	if st.aborted || st.recvEnded || st.recvErr != nil || st.finished.Load() {
		// finished: the call ended (its budget was given back), so
		// nothing more is charged or kept for it.
		st.mu.Unlock()
		return
	}
	st.recvWin -= int64(frameLen)
	if st.recvWin < 0 {
		st.mu.Unlock()
		c.resetStream(st.id, http2.ErrCodeFlowControl, spi.Errorf(spi.Internal, "peer exceeded the stream's flow-control window"))
		return
	}
	st.unreturned += frameLen
	var fail error
	failReason := spi.ReasonBadRequest
	for len(p) > 0 && fail == nil {
		if st.cur == nil {
			k := copy(st.pre[st.preN:], p)
			st.preN += k
			p = p[k:]
			if st.preN < 5 {
				break
			}
			flag := st.pre[0]
			n := binary.BigEndian.Uint32(st.pre[1:])
			if flag > 1 {
				fail = spi.Errorf(spi.Internal, "grpc: invalid compressed-flag %d in message prefix", flag)
				break
			}
			if flag == 1 && st.comp == nil {
				fail = spi.Errorf(spi.Internal, "grpc: compressed message without grpc-encoding")
				break
			}
			if int64(n) > int64(maxMsg) {
				// Refused on the prefix alone: nothing is allocated.
				fail = spi.Errorf(spi.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, maxMsg)
				break
			}
			if st.m.stream == nil && len(st.msgs) > 0 {
				fail = spi.Errorf(spi.Internal, "grpc: more than one request message for unary method %s", st.m.full)
				break
			}
			// Charged to the server's body budget (and the peer's share
			// of it) before the buffer is made, as a Kite request is.
			if !c.sc.charge(int64(n)) {
				fail = c.sc.budgetError("request message", int64(n))
				failReason = spi.ReasonBodyMemory
				break
			}
			st.charged += int64(n)
			if st.m.stream == nil {
				// A unary request is decoded and dropped before the
				// answer: its storage goes back to the pool.
				st.curBP = protocol.GetBuffer(int(n))
				st.cur = (*st.curBP)[:n]
			} else {
				st.cur, st.curBP = make([]byte, n), nil
			}
			st.curN, st.curLen = 0, int(n)
		}
		k := copy(st.cur[st.curN:], p)
		st.curN += k
		p = p[k:]
		if st.curN == st.curLen {
			st.msgs = append(st.msgs, grpcMsg{b: st.cur, bp: st.curBP, flag: st.pre[0], wire: 5 + st.curLen})
			if st.m.stream != nil {
				st.held += 5 + st.curLen
			}
			st.cur, st.curBP, st.preN = nil, nil, 0
		}
	}
	if fail != nil {
		st.mu.Unlock()
		st.failAs(fail, failReason)
		return
	}
	if end {
		st.recvEnded = true
		st.halfClosed.Store(true)
		if st.preN != 0 || st.cur != nil {
			st.mu.Unlock()
			st.fail(spi.Errorf(spi.Internal, "grpc: stream ended inside a message"))
			return
		}
	}
	st.returnLocked()
	if st.m.stream != nil {
		st.deliverLocked()
		st.mu.Unlock()
		return
	}
	st.mu.Unlock()
	if end {
		st.dispatch()
	}
}

// returnLocked gives window back to the peer: everything received, as
// long as complete messages waiting for the handler stay under one
// window (a handler that stops reading stops its sender).
func (st *h2stream) returnLocked() {
	w := st.c.g.opts.StreamWindow
	if st.recvEnded || st.recvErr != nil || st.held >= w || st.unreturned < w/4 {
		return
	}
	st.recvWin += int64(st.unreturned)
	st.c.enqueue(h2item{kind: kWindow, id: st.id, val: uint32(st.unreturned)})
	st.unreturned = 0
}

// deliverLocked hands queued messages to the Kite stream within its
// window, then the end marker once the client has half-closed.
func (st *h2stream) deliverLocked() {
	k := st.kst
	for st.outstanding < k.window && len(st.msgs) > 0 {
		m := st.msgs[0]
		st.msgs[0] = grpcMsg{}
		st.msgs = st.msgs[1:]
		f := protocol.Frame{Header: protocol.Header{Type: protocol.TypeStreamData, Codec: st.codec.ID(), ID: st.id}, Body: m.b}
		if m.flag == 1 {
			f.Compress = st.comp.ID()
		}
		st.outstanding++
		st.sizes = append(st.sizes, m.wire)
		// The Kite stream charges what it buffers (limitBuffer) until
		// Recv decodes it: the charge moves there.
		st.charged -= int64(len(m.b))
		st.c.sc.uncharge(int64(len(m.b)))
		k.deliver(f)
	}
	if st.recvEnded && len(st.msgs) == 0 && !st.endSent {
		st.endSent = true
		k.deliver(protocol.Frame{Header: protocol.Header{Type: protocol.TypeStreamEnd, ID: st.id}})
	}
}

func (st *h2stream) onEnd() {
	st.mu.Lock()
	if st.aborted || st.recvEnded {
		st.mu.Unlock()
		return
	}
	st.recvEnded = true
	st.halfClosed.Store(true)
	if st.preN != 0 || st.cur != nil {
		st.mu.Unlock()
		st.fail(spi.Errorf(spi.Internal, "grpc: stream ended inside a message"))
		return
	}
	if st.m.stream != nil {
		st.deliverLocked()
		st.mu.Unlock()
		return
	}
	st.mu.Unlock()
	st.dispatch()
}

// fail ends a stream whose request broke the rules (oversized or
// malformed message): a unary call not yet running is answered here; a
// running stream handler sees the error from Recv and its end carries it.
func (st *h2stream) fail(err error) { st.failAs(err, spi.ReasonBadRequest) }

// failAs is fail for a reason: a unary call refused before its handler
// was dispatched is reported to the server's reject observers with it.
func (st *h2stream) failAs(err error, reason string) {
	st.mu.Lock()
	if st.aborted {
		st.mu.Unlock()
		return
	}
	st.recvErr = err
	st.msgs = nil
	st.unchargeLocked()
	dispatched := st.dispatched
	st.dispatched = true
	st.mu.Unlock()
	if st.m.stream != nil {
		st.kst.finish(err)
		return
	}
	if !dispatched {
		st.c.s.rejected(st.m.full, true, st.c.sc.peer, spi.ProtocolGRPC, reason, err, false)
		st.c.enqueue(h2item{kind: kStream, id: st.id, trl: statusFields(append([]hpack.HeaderField(nil), respHeaders(st.ct)...), err, nil), rst: true, val: uint32(http2.ErrCodeNo), fin: st})
	}
}

// abort ends a stream the peer reset or whose connection closed: the
// handler's context is cancelled and nothing more is sent.
func (st *h2stream) abort(err error) {
	st.mu.Lock()
	if st.aborted {
		st.mu.Unlock()
		return
	}
	st.aborted = true
	dispatched := st.dispatched
	st.dispatched = true
	st.mu.Unlock()
	if st.kst != nil {
		st.kst.finish(err)
		return
	}
	st.cancel()
	if !dispatched {
		st.finish()
	}
}

// dispatch queues a complete unary request for the reader's batch.
func (st *h2stream) dispatch() {
	st.mu.Lock()
	if st.dispatched {
		st.mu.Unlock()
		return
	}
	st.dispatched = true
	st.mu.Unlock()
	// Called by the reader only: the call runs at its next batch.
	st.c.batch.calls = append(st.c.batch.calls, st)
}

// finish releases the call's admission: once, after its last frame was
// flushed (so a draining Shutdown never closes the socket under an
// answer) or when it is abandoned.
func (st *h2stream) finish() {
	if st.finished.Swap(true) {
		return
	}
	c := st.c
	st.cancel()
	st.mu.Lock()
	st.unchargeLocked()
	st.mu.Unlock()
	c.mu.Lock()
	if c.streams[st.id] == st {
		delete(c.streams, st.id)
	}
	if st.kst == nil && len(c.free) < maxFreeStreams {
		// A unary call's last use: its answer is flushed (or dropped) and
		// it is out of c.streams. Only this connection's reader, which
		// alone takes from c.free, may still hold a stale pointer (while
		// it handles a reset or ends the connection), never reusing it
		// meanwhile.
		c.free = append(c.free, st)
	}
	c.mu.Unlock()
	c.sc.unadmit()
}

// maxFreeStreams bounds the finished streams a connection keeps for reuse.
const maxFreeStreams = 128

// unchargeLocked gives back the body budget the stream still holds.
func (st *h2stream) unchargeLocked() {
	st.c.sc.uncharge(st.charged)
	st.charged = 0
}

func (st *h2stream) runUnary() {
	c, s, m := st.c, st.c.s, st.m
	u := st.u
	call := &u.call
	*call = spi.Call{Side: spi.ServerSide, Method: m.full, Peer: c.sc.peer, Meta: &u.md, Protocol: spi.ProtocolGRPC}
	var err error
	if len(st.msgs) != 1 {
		err = spi.Errorf(spi.Internal, "grpc: unary method %s called with %d request messages", m.full, len(st.msgs))
	} else {
		msg := st.msgs[0]
		st.msgs = nil
		req := m.newReq()
		f := protocol.Frame{Header: protocol.Header{Codec: st.codec.ID()}, Body: msg.b}
		if msg.flag == 1 {
			f.Compress = st.comp.ID()
		}
		// A compressed request is charged at its decompressed size
		// before it is decompressed (decodeBodyIn), until the call ends.
		var dc int64
		dc, err = decodeBodyIn(s.table, &f, req, st.c.g.opts.MaxMessage, c.sc)
		defer c.sc.uncharge(dc)
		if msg.bp != nil { // codecs do not retain their input (spi.Codec)
			protocol.PutBuffer(msg.bp)
		}
		if err == nil {
			call.Request = req
			u.hctx = handlerCtx{Context: st.ctx, m: m, call: call}
			err = c.sc.invokeSafely(&u.hctx, call)
			if err == nil && st.ctx.Err() == context.DeadlineExceeded {
				err = spi.Errorf(spi.DeadlineExceeded, "deadline exceeded while the handler ran")
			}
		}
	}
	it := h2item{kind: kStream, id: st.id, fin: st}
	if err == nil {
		var fb protocol.Builder
		fb.Begin(protocol.TypeResponse, 0, 0, 0, 0)
		fb.EndMeta()
		var merr error
		fb.B, merr = st.codec.Marshal(fb.B, call.Response)
		if merr == nil && st.compResp {
			merr = compressBody(&fb, st.comp, s.opts.CompressThreshold)
		}
		n := len(fb.B) - protocol.HeaderSize
		switch {
		case merr != nil:
			err = spi.WrapError(spi.Internal, merr, "encoding %s response", st.codec.Name())
			fb.Release()
		case n > st.c.g.opts.MaxMessage:
			err = spi.Errorf(spi.ResourceExhausted, "response of %d bytes exceeds the max message size (%d)", n, st.c.g.opts.MaxMessage)
			fb.Release()
		default:
			compressed := fb.CompressID() != spi.CompressNone
			frame, buf := fb.Detach()
			frame[protocol.HeaderSize-5] = 0
			it.hdrs = respHeaders(st.ct)
			if compressed {
				frame[protocol.HeaderSize-5] = 1
				it.hdrs = append(append([]hpack.HeaderField(nil), it.hdrs...), hpack.HeaderField{Name: "grpc-encoding", Value: st.comp.Name()})
			}
			binary.BigEndian.PutUint32(frame[protocol.HeaderSize-4:], uint32(n))
			it.data, it.buf = frame[protocol.HeaderSize-5:], buf
			it.trl = statusFields(nil, nil, call.Trailer)
		}
	}
	if err != nil {
		it.trl = statusFields(append([]hpack.HeaderField(nil), respHeaders(st.ct)...), err, call.Trailer)
	}
	st.mu.Lock()
	it.rst = !st.recvEnded
	st.mu.Unlock()
	if st.inline { // the reader flushes after its batch
		c.queue(it)
		return
	}
	c.enqueue(it)
}

func (st *h2stream) runStream() {
	c, s, m, k := st.c, st.c.s, st.m, st.kst
	call := &st.u.call
	*call = spi.Call{Side: spi.ServerSide, Method: m.full, Peer: c.sc.peer, Stream: true, Meta: &st.u.md, Protocol: spi.ProtocolGRPC}
	k.Header = &st.u.md
	hctx := &handlerCtx{Context: k.ctx, m: m, call: call}
	inner := func(ctx context.Context, _ *spi.Call) error { return m.stream(ctx, m.srv, k) }
	invoke := spi.Chain(inner, s.opts.Filters...)
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				// As on Kite's protocol: the caller gets a generic Internal
				// with an incident id, the value and stack stay in the log.
				err = s.panicked(m.full, c.sc.peer, r)
			}
		}()
		return invoke(hctx, call)
	}()
	st.mu.Lock()
	aborted, rerr, open := st.aborted, st.recvErr, !st.recvEnded
	st.mu.Unlock()
	if rerr != nil {
		err = rerr
	}
	if err == nil && k.ctx.Err() == context.DeadlineExceeded {
		err = spi.Errorf(spi.DeadlineExceeded, "deadline exceeded while the handler ran")
	}
	k.finish(nil)
	k.drainRecv()
	if aborted {
		st.finish()
		return
	}
	st.endMu.Lock()
	defer st.endMu.Unlock()
	if st.ended {
		// The server ended the stream already (endByServer sent the
		// trailers): only the admission is left to give back, after them.
		c.enqueue(h2item{kind: kStream, id: st.id, fin: st})
		return
	}
	st.ended = true
	var trl []hpack.HeaderField
	if !st.hdrSent.Swap(true) {
		trl = append(trl, respHeaders(st.ct)...)
	}
	c.enqueue(h2item{kind: kStream, id: st.id, trl: statusFields(trl, err, call.Trailer), rst: open, val: uint32(http2.ErrCodeNo), fin: st})
}

// sent returns send quota as the writer puts data on the wire.
func (st *h2stream) sent(n int) {
	if st.queued.Add(-int64(n)) < grpcSendQuota {
		select {
		case st.quotaSig <- struct{}{}:
		default:
		}
	}
}

// grpcSendQuota bounds the bytes a stream handler may have queued for
// the writer beyond what the peer's window lets out.
const grpcSendQuota = 256 << 10

// frameSender, for the Kite stream a streaming handler uses.

func (st *h2stream) sendBuilt(fb *protocol.Builder) error {
	frame, buf := fb.Detach()
	if protocol.Type(frame[3]) == protocol.TypeStreamEnd {
		// Stream.abort: the server ended the stream (idle, buffer or
		// budget exceeded); the client learns why from the trailers.
		st.endByServer(frame)
		protocol.PutBuffer(buf)
		return nil
	}
	n := len(frame) - protocol.HeaderSize
	if n > st.c.g.opts.MaxMessage {
		protocol.PutBuffer(buf)
		return spi.Errorf(spi.ResourceExhausted, "message of %d bytes exceeds the max message size (%d)", n, st.c.g.opts.MaxMessage)
	}
	frame[protocol.HeaderSize-5] = 0
	binary.BigEndian.PutUint32(frame[protocol.HeaderSize-4:], uint32(n))
	it := h2item{kind: kStream, id: st.id, data: frame[protocol.HeaderSize-5:], buf: buf, st: st}
	st.endMu.Lock()
	if st.ended {
		st.endMu.Unlock()
		protocol.PutBuffer(buf)
		return st.kst.terminalErr()
	}
	if !st.hdrSent.Swap(true) {
		it.hdrs = respHeaders(st.ct)
	}
	st.queued.Add(int64(len(it.data)))
	st.c.enqueue(it)
	st.endMu.Unlock()
	// The Kite stream counts messages; HTTP/2 counts bytes in the writer.
	// Give the message credit back at once and hold the sender here while
	// too much waits for the peer's window.
	st.kst.deliver(protocol.Frame{Header: protocol.Header{Type: protocol.TypeWindowUpdate, ID: st.id}, Body: []byte{0, 0, 0, 1}})
	for st.queued.Load() >= grpcSendQuota {
		select {
		case <-st.quotaSig:
		case <-st.kst.done:
			return st.kst.terminalErr()
		case <-st.ctx.Done():
			return ctxErr(st.ctx)
		}
	}
	return nil
}

// endByServer answers a stream the server ended while its handler may
// still run: trailers with the status the Kite stream's end frame
// carries, then RST_STREAM if the client is still sending. The handler's
// own end is dropped by the writer (the stream is closed by then).
func (st *h2stream) endByServer(frame []byte) {
	var err error = spi.Errorf(spi.Internal, "stream ended by the server")
	if len(frame) >= protocol.HeaderSize {
		metaLen := int(binary.BigEndian.Uint32(frame[12:16]))
		if metaLen <= len(frame)-protocol.HeaderSize {
			var m protocol.Meta
			if protocol.DecodeMeta(frame[protocol.HeaderSize:protocol.HeaderSize+metaLen], &m) == nil {
				if e := m.Err(); e != nil {
					err = e
				}
			}
		}
	}
	st.endMu.Lock()
	defer st.endMu.Unlock()
	if st.ended {
		return
	}
	st.ended = true
	var trl []hpack.HeaderField
	if !st.hdrSent.Swap(true) {
		trl = append(trl, respHeaders(st.ct)...)
	}
	st.c.enqueue(h2item{kind: kStream, id: st.id, trl: statusFields(trl, err, nil), rst: !st.halfClosed.Load(), val: uint32(http2.ErrCodeNo)})
}

func (st *h2stream) sendFrame(b []byte) error {
	if len(b) == protocol.HeaderSize+4 && protocol.Type(b[3]) == protocol.TypeWindowUpdate {
		st.consumed(int(binary.BigEndian.Uint32(b[protocol.HeaderSize:])))
	}
	return nil // a server-side CloseSend has no HTTP/2 meaning: trailers end the stream
}

// consumed is the Kite stream reporting n messages read by the handler:
// their bytes go back to the peer's window and more messages move in.
func (st *h2stream) consumed(n int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	n = min(n, len(st.sizes))
	for _, b := range st.sizes[:n] {
		st.held -= b
	}
	st.sizes = st.sizes[n:]
	st.outstanding -= n
	if st.aborted {
		return
	}
	st.deliverLocked()
	st.returnLocked()
}

func (st *h2stream) endStream(uint32)    {}
func (st *h2stream) codecs() *codecTable { return st.c.s.table }
func (st *h2stream) maxFrame() int       { return st.c.g.opts.MaxMessage }

var _ frameSender = (*h2stream)(nil)

// String names the stream in logs.
func (st *h2stream) String() string { return fmt.Sprintf("grpc stream %d %s", st.id, st.m.full) }

// runOnWorker runs a unary call on a worker goroutine, timing it for the
// reader's choice (method.slow).
func (st *h2stream) runOnWorker() {
	m, t := st.m, monoNow()
	st.runUnary()
	m.observe(monoNow() - t)
}
