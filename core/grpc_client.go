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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// GRPCTransport lets a Kite client call plain gRPC servers. It is a
// transport because that is where the difference lies: each connection it
// dials speaks HTTP/2 + gRPC to the server and Kite frames to the client
// above it, translating call by call. Everything above the connection —
// balancers, registries, the retry budget, breakers, filters, heartbeats
// (answered with HTTP/2 PINGs), GOAWAY handling — works unchanged. The
// Kite method "pkg.Svc.Method" (a proto service's full name, as
// protoc-gen-kite stubs call it) is called as "/pkg.Svc/Method", and a
// short "Svc.Method" as "/<Package>.Svc/Method"; request
// bodies travel as the client's codec encodes them (proto →
// application/grpc, json → application/grpc+json).
type GRPCTransport struct {
	// Package is the proto package of the services called by short
	// name ("" for none); full names ("eco.v1.Inventory.Get") carry
	// their own.
	Package string
	// Packages overrides Package per Kite service name.
	Packages map[string]string
	// Base dials the byte stream; TCP (or Unix for "unix:" addresses)
	// when nil. Not used when TLS is set.
	Base spi.Transport
	// TLS, when set, secures every connection (gRPC over TLS): the
	// handshake uses its certificates, authorities and server name —
	// built by NewTLS from the TLSConfig a Kite client's tls transport
	// takes (kite.hcl: the client's tls block) — and offers ALPN "h2"
	// instead of "kite/1". A server that does not select "h2" is
	// refused, as grpc-go refuses it.
	TLS *TLS
	// MaxMessage bounds one incoming message. Default 4 MiB.
	MaxMessage int
}

// Name implements spi.Transport.
func (*GRPCTransport) Name() string { return "grpc" }

// Listen implements spi.Transport: a gRPC transport only dials (a Kite
// server answers gRPC on its own port with Server.EnableGRPC).
func (*GRPCTransport) Listen(context.Context, string) (net.Listener, error) {
	return nil, errors.New("kite: the grpc transport only dials; serve gRPC with Server.EnableGRPC (kite.hcl grpc = true)")
}

// Dial implements spi.Transport: it connects, sends the HTTP/2 preface and
// returns a connection that carries Kite frames as gRPC calls.
func (t *GRPCTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	nc, err := t.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if t.TLS != nil {
		scheme = "https"
	}
	max := t.MaxMessage
	if max <= 0 {
		max = protocol.DefaultMaxFrame
	}
	b := &grpcBridge{
		t: t, nc: nc, authority: addr, scheme: scheme, maxMsg: max, streamComp: dialCompressor(ctx),
		calls: map[uint32]*bridgeCall{}, byKite: map[uint32]*bridgeCall{},
		nextID: 1, sendWin: 65535, initWin: 65535, maxFrame: 16384,
		readable: make(chan struct{}, 1), closed: make(chan struct{}),
		winSig: make(chan struct{}, 1),
	}
	b.bw = bufio.NewWriterSize(nc, 32<<10)
	b.wfr = http2.NewFramer(b.bw, nil)
	b.henc = hpack.NewEncoder(&b.hbuf)
	b.rfr = http2.NewFramer(io.Discard, bufio.NewReaderSize(nc, 32<<10))
	b.rfr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	b.rfr.MaxHeaderListSize = protocol.DefaultMaxMetadata
	b.rfr.SetReuseFrames()
	b.wmu.Lock()
	_, err = io.WriteString(b.bw, http2.ClientPreface)
	if err == nil {
		err = b.wfr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20}, http2.Setting{ID: http2.SettingEnablePush, Val: 0})
	}
	if err == nil {
		err = b.wfr.WriteWindowUpdate(0, 16<<20)
	}
	if err == nil {
		err = b.bw.Flush()
	}
	b.wmu.Unlock()
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	go b.readLoop()
	return b, nil
}

// dial connects to addr: over TLS offering ALPN h2 when t.TLS is set,
// else through Base.
func (t *GRPCTransport) dial(ctx context.Context, addr string) (net.Conn, error) {
	if t.TLS == nil {
		return transportFor(addr, t.Base).Dial(ctx, addr)
	}
	tc, err := t.TLS.dial(ctx, addr, []string{ALPNGRPC})
	if err != nil {
		return nil, err
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != ALPNGRPC {
		_ = tc.Close()
		if p == "" {
			p = "none"
		}
		return nil, fmt.Errorf("tls: %s did not select ALPN %q (selected: %s): it does not serve gRPC over TLS on this port", addr, ALPNGRPC, p)
	}
	return tc, nil
}

// path is the gRPC path of a Kite method: "eco.v1.Inventory.Get" →
// "/eco.v1.Inventory/Get" as is; a short service name ("Svc.M") gets
// Package (or its Packages entry) in front.
func (t *GRPCTransport) path(method string) string {
	svc, m, ok := spi.SplitMethod(method)
	if !ok {
		svc, m, _ = strings.Cut(method, ".")
	}
	if strings.Contains(svc, ".") {
		return "/" + svc + "/" + m
	}
	pkg := t.Package
	if p, ok := t.Packages[svc]; ok {
		pkg = p
	}
	if pkg != "" {
		return "/" + pkg + "." + svc + "/" + m
	}
	return "/" + svc + "/" + m
}

// grpcBridge is a net.Conn to the Kite client above it: Write takes Kite
// frames, Read returns Kite frames; below it is one HTTP/2 connection.
type grpcBridge struct {
	t          *GRPCTransport
	nc         net.Conn
	authority  string
	scheme     string // "http", or "https" over TLS
	maxMsg     int
	streamComp uint8 // the dialing client's compressor, if gRPC peers read it: streams declare it

	// HTTP/2 writing (Write's goroutine and the reader's control answers)
	wmu      sync.Mutex
	bw       *bufio.Writer
	wfr      *http2.Framer
	hbuf     bytes.Buffer
	henc     *hpack.Encoder
	nextID   uint32
	sendWin  int64 // connection send window
	initWin  int64
	maxFrame int
	winSig   chan struct{}

	rfr *http2.Framer

	mu     sync.Mutex
	calls  map[uint32]*bridgeCall // by HTTP/2 stream id
	byKite map[uint32]*bridgeCall // by Kite call id
	pings  [][]byte               // Kite ping bodies waiting for an HTTP/2 PING ack
	out    bytes.Buffer           // Kite frames for Read
	err    error                  // set when the connection ended
	inbuf  []byte                 // partial Kite frames from Write

	readable  chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

type bridgeCall struct {
	kid     uint32 // Kite call id
	sid     uint32 // HTTP/2 stream id
	stream  bool
	oneway  bool
	codec   uint8
	comp    uint8  // the request's compressor id (grpc-encoding), 0 for none
	enc     string // the response's grpc-encoding ("" or "identity": none)
	sendWin int64
	// deadline is when the call's timeout ends (zero: none); a server's
	// RST_STREAM(CANCEL) after it is the deadline, as grpc-go reads it.
	deadline time.Time
	// response assembly
	status  *spi.Error
	trailer spi.Metadata
	pre     [5]byte
	preN    int
	cur     []byte
	curN    int
	msgs    [][]byte
	mcomp   []uint8 // each message's compressor id (0: not compressed)
	credit  int     // messages the Kite client's window still takes (streams)
	pending int     // HTTP/2 bytes received and not yet returned
	ended   bool
}

// Write implements net.Conn: b holds Kite frames, possibly split.
func (b *grpcBridge) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	b.inbuf = append(b.inbuf, p...)
	var frames []protocol.Frame
	for len(b.inbuf) >= protocol.HeaderSize {
		var h protocol.Header
		if err := protocol.ParseHeader(b.inbuf, &h, uint32(protocol.DefaultMaxFrame)*2, protocol.DefaultMaxMetadata*2); err != nil {
			b.mu.Unlock()
			b.fail(err)
			return 0, err
		}
		n := protocol.HeaderSize + int(h.MetaLen) + int(h.BodyLen)
		if len(b.inbuf) < n {
			break
		}
		f := protocol.Frame{Header: h}
		buf := append([]byte(nil), b.inbuf[protocol.HeaderSize:n]...)
		f.Meta, f.Body = buf[:h.MetaLen], buf[h.MetaLen:]
		frames = append(frames, f)
		b.inbuf = b.inbuf[n:]
	}
	if len(b.inbuf) == 0 {
		b.inbuf = nil
	}
	b.mu.Unlock()
	for _, f := range frames {
		if err := b.handleKite(f); err != nil {
			b.fail(err)
			return 0, err
		}
	}
	b.wmu.Lock()
	err := b.bw.Flush()
	b.wmu.Unlock()
	if err != nil {
		b.fail(err)
		return 0, err
	}
	return len(p), nil
}

// handleKite turns one Kite frame from the client into HTTP/2.
func (b *grpcBridge) handleKite(f protocol.Frame) error {
	switch f.Type {
	case protocol.TypeRequest, protocol.TypeOneWay:
		return b.startCall(f)
	case protocol.TypeStreamData:
		c := b.callByKite(f.ID)
		if c == nil {
			return nil
		}
		if f.Compress != spi.CompressNone && f.Compress != c.comp {
			// A stream's grpc-encoding went out with its headers, before
			// its first message: the dialing client's compressor, when
			// gRPC peers read it (startCall).
			_, err := grpcEncoding(f.Compress)
			if err == nil {
				err = spi.Errorf(spi.Internal, "stream message compressed with compressor id %d, not the stream's declared grpc-encoding", f.Compress)
			}
			b.kiteError(c, err)
			return nil
		}
		if err := b.sendMessage(c, f.Body, false, f.Compress != spi.CompressNone); err != nil {
			return err
		}
		var inc [4]byte
		binary.BigEndian.PutUint32(inc[:], 1)
		b.emit(protocol.AppendControl(nil, protocol.TypeWindowUpdate, f.ID, inc[:]))
	case protocol.TypeStreamEnd:
		if c := b.callByKite(f.ID); c != nil {
			b.wmu.Lock()
			err := b.wfr.WriteData(c.sid, true, nil)
			b.wmu.Unlock()
			return err
		}
	case protocol.TypeWindowUpdate:
		if c := b.callByKite(f.ID); c != nil && len(f.Body) == 4 {
			b.mu.Lock()
			c.credit += int(binary.BigEndian.Uint32(f.Body))
			b.flushStreamLocked(c)
			give := 0
			if c.credit > 0 && !c.ended {
				give, c.pending = c.pending, 0
			}
			sid := c.sid
			b.mu.Unlock()
			if give > 0 {
				b.wmu.Lock()
				err := b.wfr.WriteWindowUpdate(sid, uint32(give))
				b.wmu.Unlock()
				return err
			}
		}
	case protocol.TypeCancel:
		b.mu.Lock()
		c := b.byKite[f.ID]
		if c != nil {
			delete(b.byKite, f.ID)
			delete(b.calls, c.sid)
		}
		b.mu.Unlock()
		if c != nil {
			b.wmu.Lock()
			err := b.wfr.WriteRSTStream(c.sid, http2.ErrCodeCancel)
			b.wmu.Unlock()
			return err
		}
	case protocol.TypePing:
		b.mu.Lock()
		b.pings = append(b.pings, protocol.AppendControl(nil, protocol.TypePong, f.ID, f.Body))
		b.mu.Unlock()
		b.wmu.Lock()
		err := b.wfr.WritePing(false, [8]byte{'k', 'i', 't', 'e'})
		b.wmu.Unlock()
		return err
	}
	return nil
}

func (b *grpcBridge) callByKite(id uint32) *bridgeCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byKite[id]
}

func (b *grpcBridge) startCall(f protocol.Frame) error {
	var md spi.Metadata
	meta := protocol.Meta{MD: &md}
	if err := protocol.DecodeMeta(f.Meta, &meta); err != nil {
		return err
	}
	c := &bridgeCall{kid: f.ID, stream: f.Flags&protocol.FlagStream != 0, oneway: f.Type == protocol.TypeOneWay, codec: f.Codec, credit: InitialStreamCredit}
	ct := "application/grpc"
	switch f.Codec {
	case spi.CodecProto:
	case spi.CodecJSON:
		ct = "application/grpc+json"
	default:
		if c.stream {
			// The codec of a stream shows in its first message; proto is
			// the gRPC default.
			break
		}
		b.kiteError(c, spi.Errorf(spi.Unimplemented, "the grpc transport carries proto or json bodies, not codec id %d", f.Codec))
		return nil
	}
	hf := []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: b.scheme},
		{Name: ":path", Value: b.t.path(string(meta.Method))}, {Name: ":authority", Value: b.authority},
		{Name: "content-type", Value: ct}, {Name: "te", Value: "trailers"},
	}
	if f.Compress != spi.CompressNone {
		name, err := grpcEncoding(f.Compress)
		if err != nil {
			b.kiteError(c, err)
			return nil
		}
		// The server may answer in the same encoding: this client has
		// its compressor, since it compressed the request with it.
		c.comp = f.Compress
		hf = append(hf, hpack.HeaderField{Name: "grpc-encoding", Value: name}, hpack.HeaderField{Name: "grpc-accept-encoding", Value: name})
	}
	if c.stream && c.comp == spi.CompressNone && b.streamComp != spi.CompressNone {
		// A stream's messages may be compressed (each says whether it
		// is) only in the encoding its headers declare: the client's.
		name, _ := grpcEncoding(b.streamComp)
		c.comp = b.streamComp
		hf = append(hf, hpack.HeaderField{Name: "grpc-encoding", Value: name}, hpack.HeaderField{Name: "grpc-accept-encoding", Value: name})
	}
	if meta.HasTimeout {
		hf = append(hf, hpack.HeaderField{Name: "grpc-timeout", Value: encodeGRPCTimeout(meta.Timeout)})
		c.deadline = time.Now().Add(meta.Timeout)
	}
	hf = mdToHeaders(hf, &md)
	b.wmu.Lock()
	sid := b.nextID
	b.nextID += 2
	c.sid = sid
	c.sendWin = b.initWin
	b.mu.Lock()
	b.calls[sid] = c
	if !c.oneway {
		b.byKite[c.kid] = c
	}
	b.mu.Unlock()
	b.hbuf.Reset()
	for _, h := range hf {
		_ = b.henc.WriteField(h)
	}
	blk := b.hbuf.Bytes()
	var err error
	first := true
	for (first || len(blk) > 0) && err == nil {
		n := min(len(blk), b.maxFrame)
		frag := blk[:n]
		blk = blk[n:]
		if first {
			err = b.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: frag, EndHeaders: len(blk) == 0})
			first = false
		} else {
			err = b.wfr.WriteContinuation(sid, len(blk) == 0, frag)
		}
	}
	b.wmu.Unlock()
	if err != nil || c.stream {
		if err == nil {
			// Accept the stream at once: the Kite client may send its
			// window's worth, which is forwarded as HTTP/2 allows.
			var inc [4]byte
			binary.BigEndian.PutUint32(inc[:], uint32(DefaultStreamWindow-InitialStreamCredit))
			b.emit(protocol.AppendControl(nil, protocol.TypeWindowUpdate, c.kid, inc[:]))
		}
		return err
	}
	return b.sendMessage(c, f.Body, true, c.comp != spi.CompressNone)
}

// grpcEncoding is the grpc-encoding name of a Kite compressor whose
// bytes a gRPC peer's compressor of that name reads: gzip (grpc-go's one
// built-in compressor) and zstd (standard frames). Kite's snappy and s2
// bodies are block-format, which gRPC snappy/s2 compressors (framed
// streams) do not read.
func grpcEncoding(id uint8) (string, *spi.Error) {
	switch id {
	case spi.CompressGzip:
		return "gzip", nil
	case spi.CompressZstd:
		return "zstd", nil
	case spi.CompressSnappy, spi.CompressS2:
		return "", spi.Errorf(spi.Unimplemented, "the grpc transport sends gzip or zstd bodies: Kite's snappy and s2 use block formats that gRPC compressors of those names do not read")
	}
	return "", spi.Errorf(spi.Unimplemented, "the grpc transport sends gzip or zstd bodies, not compressor id %d", id)
}

// dialCompressorKey carries the dialing client's compressor to the grpc
// transport's Dial (endpoint.dial), so its streams can declare it.
type dialCompressorKey struct{}

// dialCompressor is the id of the compressor in ctx when gRPC peers read
// its bodies (gzip, zstd), else 0.
func dialCompressor(ctx context.Context) uint8 {
	comp, _ := ctx.Value(dialCompressorKey{}).(spi.Compressor)
	if comp == nil {
		return spi.CompressNone
	}
	if _, err := grpcEncoding(comp.ID()); err != nil {
		return spi.CompressNone
	}
	return comp.ID()
}

// compressorID is the Kite compressor id of a response's grpc-encoding
// (0: unknown).
func compressorID(enc string) uint8 {
	switch enc {
	case "gzip":
		return spi.CompressGzip
	case "zstd":
		return spi.CompressZstd
	}
	return 0
}

// sendMessage writes one gRPC message (compressed: its body is already
// in the call's grpc-encoding), waiting for HTTP/2 send window.
func (b *grpcBridge) sendMessage(c *bridgeCall, body []byte, end, compressed bool) error {
	msg := make([]byte, 5+len(body))
	if compressed {
		msg[0] = 1
	}
	binary.BigEndian.PutUint32(msg[1:5], uint32(len(body)))
	copy(msg[5:], body)
	for len(msg) > 0 || end {
		b.wmu.Lock()
		n := int64(min(len(msg), b.maxFrame))
		n = min(n, b.sendWin, c.sendWin)
		if n <= 0 && len(msg) > 0 {
			b.wmu.Unlock()
			select {
			case <-b.winSig:
				continue
			case <-b.closed:
				return b.errOr(net.ErrClosed)
			case <-time.After(time.Second):
				continue
			}
		}
		last := int(n) == len(msg)
		err := b.wfr.WriteData(c.sid, end && last, msg[:n])
		b.sendWin -= n
		c.sendWin -= n
		b.wmu.Unlock()
		if err != nil {
			return err
		}
		msg = msg[n:]
		if last {
			return nil
		}
	}
	return nil
}

// emit queues Kite frames for Read.
func (b *grpcBridge) emit(frame []byte) {
	b.mu.Lock()
	b.out.Write(frame)
	b.mu.Unlock()
	select {
	case b.readable <- struct{}{}:
	default:
	}
}

func (b *grpcBridge) emitLocked(frame []byte) {
	b.out.Write(frame)
	select {
	case b.readable <- struct{}{}:
	default:
	}
}

// kiteError answers a Kite call with an error without involving the
// server.
func (b *grpcBridge) kiteError(c *bridgeCall, e *spi.Error) {
	if c.oneway {
		return
	}
	b.mu.Lock()
	delete(b.byKite, c.kid)
	b.emitLocked(kiteStatusFrame(c, e, nil))
	b.mu.Unlock()
}

func kiteStatusFrame(c *bridgeCall, e *spi.Error, trailer *spi.Metadata) []byte {
	var fb protocol.Builder
	defer fb.Release()
	t := protocol.TypeResponse
	if c.stream {
		t = protocol.TypeStreamEnd
	}
	flags := uint8(0)
	if e != nil {
		flags = protocol.FlagError
	}
	fb.Begin(t, flags, c.codec, 0, c.kid)
	if e != nil {
		fb.B = protocol.AppendError(fb.B, e)
	}
	if trailer != nil && trailer.Len() > 0 && !c.stream {
		fb.B = protocol.AppendMD(fb.B, trailer)
	}
	fb.EndMeta()
	return append([]byte(nil), fb.Finish()...)
}

// Read implements net.Conn.
func (b *grpcBridge) Read(p []byte) (int, error) {
	for {
		b.mu.Lock()
		if b.out.Len() > 0 {
			n, _ := b.out.Read(p)
			b.mu.Unlock()
			return n, nil
		}
		err := b.err
		b.mu.Unlock()
		if err != nil {
			return 0, err
		}
		select {
		case <-b.readable:
		case <-b.closed:
		}
	}
}

func (b *grpcBridge) errOr(def error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	return def
}

func (b *grpcBridge) fail(err error) {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
		close(b.closed)
		_ = b.nc.Close()
	})
}

// Close implements net.Conn.
func (b *grpcBridge) Close() error {
	b.fail(net.ErrClosed)
	return nil
}

func (b *grpcBridge) LocalAddr() net.Addr                { return b.nc.LocalAddr() }
func (b *grpcBridge) RemoteAddr() net.Addr               { return b.nc.RemoteAddr() }
func (b *grpcBridge) SetDeadline(t time.Time) error      { return nil }
func (b *grpcBridge) SetReadDeadline(t time.Time) error  { return nil }
func (b *grpcBridge) SetWriteDeadline(t time.Time) error { return b.nc.SetWriteDeadline(t) }

// readLoop reads the server's HTTP/2 frames and answers the Kite client.
func (b *grpcBridge) readLoop() {
	var err error
	for err == nil {
		var f http2.Frame
		f, err = b.rfr.ReadFrame()
		if err != nil {
			break
		}
		err = b.onFrame(f)
	}
	if errors.Is(err, io.EOF) {
		err = io.EOF
	}
	b.fail(err)
}

func (b *grpcBridge) control(fn func() error) error {
	b.wmu.Lock()
	err := fn()
	if err == nil {
		err = b.bw.Flush()
	}
	b.wmu.Unlock()
	return err
}

func (b *grpcBridge) onFrame(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		b.wmu.Lock()
		_ = f.ForeachSetting(func(s http2.Setting) error {
			switch s.ID {
			case http2.SettingInitialWindowSize:
				delta := int64(s.Val) - b.initWin
				b.initWin = int64(s.Val)
				b.mu.Lock()
				for _, c := range b.calls {
					c.sendWin += delta
				}
				b.mu.Unlock()
			case http2.SettingMaxFrameSize:
				b.maxFrame = int(s.Val)
			case http2.SettingHeaderTableSize:
				b.henc.SetMaxDynamicTableSizeLimit(s.Val)
			}
			return nil
		})
		b.wmu.Unlock()
		b.signalWindow()
		return b.control(func() error { return b.wfr.WriteSettingsAck() })
	case *http2.PingFrame:
		if !f.IsAck() {
			return b.control(func() error { return b.wfr.WritePing(true, f.Data) })
		}
		b.mu.Lock()
		if len(b.pings) > 0 {
			b.emitLocked(b.pings[0])
			b.pings = b.pings[1:]
		}
		b.mu.Unlock()
	case *http2.WindowUpdateFrame:
		b.wmu.Lock()
		if f.StreamID == 0 {
			b.sendWin += int64(f.Increment)
		} else {
			b.mu.Lock()
			if c := b.calls[f.StreamID]; c != nil {
				c.sendWin += int64(f.Increment)
			}
			b.mu.Unlock()
		}
		b.wmu.Unlock()
		b.signalWindow()
	case *http2.GoAwayFrame:
		// New calls go elsewhere: tell the Kite client, which drains this
		// connection and dials again.
		var fb protocol.Builder
		fb.Begin(protocol.TypeGoAway, protocol.FlagError, 0, 0, 0)
		fb.B = protocol.AppendError(fb.B, spi.Errorf(spi.Unavailable, "gRPC server sent GOAWAY (%v)", f.ErrCode))
		fb.EndMeta()
		b.emit(append([]byte(nil), fb.Finish()...))
		fb.Release()
	case *http2.RSTStreamFrame:
		b.mu.Lock()
		c := b.calls[f.StreamID]
		if c != nil {
			delete(b.calls, f.StreamID)
			delete(b.byKite, c.kid)
			if !c.oneway {
				code := spi.Internal
				msg := fmt.Sprintf("gRPC stream reset by the server (%v)", f.ErrCode)
				switch f.ErrCode {
				case http2.ErrCodeRefusedStream:
					code, msg = spi.Unavailable, "gRPC server refused the stream; call was not processed"
				case http2.ErrCodeCancel:
					code = spi.Canceled
					if !c.deadline.IsZero() && !time.Now().Before(c.deadline) {
						code, msg = spi.DeadlineExceeded, "deadline exceeded (the gRPC server reset the stream)"
					}
				}
				b.emitLocked(kiteStatusFrame(c, spi.Errorf(code, "%s", msg), nil))
			}
		}
		b.mu.Unlock()
	case *http2.MetaHeadersFrame:
		return b.onHeaders(f)
	case *http2.DataFrame:
		return b.onData(f)
	}
	return nil
}

func (b *grpcBridge) signalWindow() {
	select {
	case b.winSig <- struct{}{}:
	default:
	}
}

func (b *grpcBridge) onHeaders(f *http2.MetaHeadersFrame) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.calls[f.StreamID]
	if c == nil {
		return nil
	}
	if f.Truncated {
		c.status = spi.Errorf(spi.ResourceExhausted, "gRPC response headers exceed the limit")
	}
	var st string
	var msg string
	httpStatus := ""
	for _, hf := range f.Fields {
		switch hf.Name {
		case ":status":
			httpStatus = hf.Value
		case "grpc-status":
			st = hf.Value
		case "grpc-message":
			msg = decodeGRPCMessage(hf.Value)
		case "grpc-encoding":
			c.enc = hf.Value
		case "kite-error-details-bin":
			var d spi.Metadata
			if headerToMD(&d, hf.Name, hf.Value) == nil && c.status == nil {
				c.status = &spi.Error{}
				c.status.Details = []byte(d.Get(hf.Name))
			}
		default:
			if !reservedHeader(hf.Name) {
				_ = headerToMD(&c.trailer, hf.Name, hf.Value)
			}
		}
	}
	if httpStatus != "" && httpStatus != "200" && st == "" {
		c.status = spi.Errorf(httpToCode(httpStatus), "gRPC server answered HTTP status %s", httpStatus)
	}
	if st != "" {
		code, err := strconv.Atoi(st)
		if err != nil || code < 0 || code > 0xFFFF {
			code = int(spi.Unknown)
		}
		if code != 0 {
			var details []byte
			if c.status != nil {
				details = c.status.Details
			}
			c.status = &spi.Error{Code: spi.Code(code), Message: msg, Details: details}
		} else if c.status != nil && c.status.Code == 0 {
			c.status = nil
		}
	}
	if f.StreamEnded() {
		b.endLocked(c)
	}
	return nil
}

func httpToCode(s string) spi.Code {
	switch s {
	case "400":
		return spi.Internal
	case "401":
		return spi.Unauthenticated
	case "403":
		return spi.PermissionDenied
	case "404":
		return spi.Unimplemented
	case "429", "502", "503", "504":
		return spi.Unavailable
	}
	return spi.Unknown
}

func (b *grpcBridge) onData(f *http2.DataFrame) error {
	n := int(f.Length)
	b.mu.Lock()
	c := b.calls[f.StreamID]
	if c == nil {
		b.mu.Unlock()
		return b.giveBack(0, n)
	}
	p := f.Data()
	var fail *spi.Error
	for len(p) > 0 && fail == nil {
		if c.cur == nil {
			k := copy(c.pre[c.preN:], p)
			c.preN += k
			p = p[k:]
			if c.preN < 5 {
				break
			}
			size := binary.BigEndian.Uint32(c.pre[1:])
			var comp uint8
			if c.pre[0] != 0 {
				// Passed on compressed: the Kite client decompresses it
				// with its own compressor of that id, within its limits.
				if comp = compressorID(c.enc); comp == 0 {
					fail = spi.Errorf(spi.Unimplemented, "gRPC response compressed with grpc-encoding %q, which the grpc transport does not read (gzip, zstd)", c.enc)
					break
				}
			}
			c.mcomp = append(c.mcomp, comp)
			if int64(size) > int64(b.maxMsg) {
				fail = spi.Errorf(spi.ResourceExhausted, "gRPC response message of %d bytes exceeds the limit (%d)", size, b.maxMsg)
				break
			}
			c.cur = make([]byte, size)
			c.curN = 0
		}
		k := copy(c.cur[c.curN:], p)
		c.curN += k
		p = p[k:]
		if c.curN == len(c.cur) {
			c.msgs = append(c.msgs, c.cur)
			c.cur, c.preN = nil, 0
		}
	}
	if fail != nil {
		delete(b.calls, c.sid)
		delete(b.byKite, c.kid)
		if !c.oneway {
			b.emitLocked(kiteStatusFrame(c, fail, nil))
		}
		b.mu.Unlock()
		return b.control(func() error { return b.wfr.WriteRSTStream(f.StreamID, http2.ErrCodeCancel) })
	}
	give := n
	if c.stream {
		c.pending += n
		give = 0
		b.flushStreamLocked(c)
		if c.credit > 0 || len(c.msgs) == 0 {
			give, c.pending = c.pending, 0
		}
	}
	if f.StreamEnded() {
		b.endLocked(c)
	}
	b.mu.Unlock()
	if give > 0 && !f.StreamEnded() {
		return b.giveBack(f.StreamID, give)
	}
	return b.giveBack(0, n)
}

// giveBack returns receive window: always the connection's n, and the
// stream's give when the stream continues.
func (b *grpcBridge) giveBack(sid uint32, give int) error {
	return b.control(func() error {
		if err := b.wfr.WriteWindowUpdate(0, uint32(give)); err != nil || sid == 0 {
			return err
		}
		return b.wfr.WriteWindowUpdate(sid, uint32(give))
	})
}

// flushStreamLocked moves received messages to the Kite client within
// its window.
func (b *grpcBridge) flushStreamLocked(c *bridgeCall) {
	for c.credit > 0 && len(c.msgs) > 0 {
		var fb protocol.Builder
		fb.Begin(protocol.TypeStreamData, 0, c.codec, c.mcomp[0], c.kid)
		fb.EndMeta()
		fb.B = append(fb.B, c.msgs[0]...)
		b.emitLocked(append([]byte(nil), fb.Finish()...))
		fb.Release()
		c.msgs[0] = nil
		c.msgs = c.msgs[1:]
		c.mcomp = c.mcomp[1:]
		c.credit--
	}
	if c.ended && len(c.msgs) == 0 {
		delete(b.byKite, c.kid)
		b.emitLocked(kiteStatusFrame(c, c.status, nil))
	}
}

// endLocked finishes a call when the server ended its stream.
func (b *grpcBridge) endLocked(c *bridgeCall) {
	if c.ended {
		return
	}
	c.ended = true
	delete(b.calls, c.sid)
	if c.oneway {
		return
	}
	if c.stream {
		b.flushStreamLocked(c)
		return
	}
	delete(b.byKite, c.kid)
	if c.status == nil && len(c.msgs) != 1 {
		c.status = spi.Errorf(spi.Internal, "gRPC server answered a unary call with %d messages", len(c.msgs))
	}
	if c.status != nil {
		b.emitLocked(kiteStatusFrame(c, c.status, &c.trailer))
		return
	}
	var fb protocol.Builder
	fb.Begin(protocol.TypeResponse, 0, c.codec, c.mcomp[0], c.kid)
	if c.trailer.Len() > 0 {
		fb.B = protocol.AppendMD(fb.B, &c.trailer)
	}
	fb.EndMeta()
	fb.B = append(fb.B, c.msgs[0]...)
	b.emitLocked(append([]byte(nil), fb.Finish()...))
	fb.Release()
}

func init() {
	spi.Register(spi.Entry{Kind: spi.KindTransport, Name: "grpc", Version: "1",
		Doc: "calls plain gRPC servers over HTTP/2 (Kite method Svc.M -> /package.Svc/M)",
		Schema: spi.Schema{
			{Name: "package", Type: spi.TypeString, Doc: "proto package of the services called (default none: /Svc/Method)"},
			{Name: "packages", Type: spi.TypeStringMap, Doc: "proto package per Kite service name, overriding package"},
			{Name: "max_message", Type: spi.TypeNumber, Doc: "largest response message accepted, bytes (default 4 MiB)"},
			{Name: "tls", Type: spi.TypeBool, Doc: "gRPC over TLS (ALPN h2); implied by any of the tls transport's client attributes below (default false: h2c)"},
			{Name: "ca", Type: spi.TypeString, Doc: "as the tls transport's: PEM file of trusted authorities (default: system roots)"},
			{Name: "cert", Type: spi.TypeString, Doc: "as the tls transport's: client certificate for mutual TLS"},
			{Name: "key", Type: spi.TypeString, Doc: "as the tls transport's: PEM private key file of cert"},
			{Name: "server_name", Type: spi.TypeString, Doc: "as the tls transport's: name expected in the server certificate"},
			{Name: "min_version", Type: spi.TypeString, Doc: `as the tls transport's: "1.2" or "1.3" (default "1.3")`},
			{Name: "insecure_skip_verify", Type: spi.TypeBool, Doc: "as the tls transport's: accept any server certificate (testing only)"},
		},
		New: func(cfg spi.Config) (any, error) {
			var c struct {
				Package    string            `json:"package"`
				Packages   map[string]string `json:"packages"`
				MaxMessage int               `json:"max_message"`
				TLS        bool              `json:"tls"`
				TLSConfig
			}
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
			t := &GRPCTransport{Package: c.Package, Packages: c.Packages, MaxMessage: c.MaxMessage}
			if c.ClientAuth != ClientAuthNone {
				return nil, errors.New("grpc: client_auth is a server setting; the grpc transport only dials")
			}
			if c.TLS || c.TLSConfig != (TLSConfig{}) {
				tr, err := NewTLS(c.TLSConfig)
				if err != nil {
					return nil, err
				}
				t.TLS = tr
			}
			return t, nil
		}})
}
