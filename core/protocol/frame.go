package protocol

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Wire constants.
const (
	Magic      uint16 = 0x4B54 // "KT"
	Version    uint8  = 1
	HeaderSize        = 20

	// DefaultMaxFrame bounds metadata+body of one frame.
	DefaultMaxFrame = 4 << 20
	// DefaultMaxMetadata bounds the metadata section of one frame.
	DefaultMaxMetadata = 64 << 10
)

// Type is a frame type.
type Type uint8

// Frame types.
const (
	TypeRequest      Type = 1  // unary request, or stream open with FlagStream
	TypeResponse     Type = 2  // unary response (FlagError: an error status in metadata)
	TypeOneWay       Type = 3  // request that expects no response
	TypeStreamData   Type = 4  // one message of a stream, either direction
	TypeStreamEnd    Type = 5  // half-close; from the server it carries the final status
	TypeCancel       Type = 6  // abort a call or stream
	TypePing         Type = 7  // liveness probe; body echoed in the pong
	TypePong         Type = 8  // answer to a ping
	TypeGoAway       Type = 9  // sender accepts no new calls on this connection
	TypeWindowUpdate Type = 10 // stream flow-control credit, body: uint32 messages
)

var typeNames = [...]string{"", "request", "response", "oneway", "stream-data", "stream-end",
	"cancel", "ping", "pong", "goaway", "window-update"}

func (t Type) String() string {
	if int(t) < len(typeNames) && t != 0 {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Valid reports whether t is a known frame type.
func (t Type) Valid() bool { return t >= TypeRequest && t <= TypeWindowUpdate }

// Flags.
const (
	FlagStream uint8 = 1 << 0 // on a request: opens a stream
	FlagError  uint8 = 1 << 1 // metadata carries an error status
)

// Header is the fixed part of a frame.
type Header struct {
	Version  uint8
	Type     Type
	Flags    uint8
	Codec    uint8
	Compress uint8
	ID       uint32
	MetaLen  uint32
	BodyLen  uint32
}

// PutHeader writes h into b[:HeaderSize].
func PutHeader(b []byte, h *Header) {
	_ = b[HeaderSize-1]
	binary.BigEndian.PutUint16(b[0:2], Magic)
	b[2] = h.Version
	b[3] = uint8(h.Type)
	b[4] = h.Flags
	b[5] = h.Codec
	b[6] = h.Compress
	b[7] = 0
	binary.BigEndian.PutUint32(b[8:12], h.ID)
	binary.BigEndian.PutUint32(b[12:16], h.MetaLen)
	binary.BigEndian.PutUint32(b[16:20], h.BodyLen)
}

// Errors returned by the decoder. All of them are fatal for the
// connection: the byte stream can no longer be trusted.
var (
	ErrBadMagic    = errors.New("kite protocol: bad magic (peer does not speak Kite)")
	ErrFrameTooBig = errors.New("kite protocol: frame exceeds the size limit")
	ErrMetaTooBig  = errors.New("kite protocol: metadata exceeds the size limit")
	ErrBadType     = errors.New("kite protocol: unknown frame type")
)

// VersionError reports a frame of a protocol version this side does not
// speak. The header was read in full, so the ID can be answered.
type VersionError struct {
	Got uint8
	ID  uint32
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("kite protocol: unsupported version %d (this side speaks %d)", e.Got, Version)
}

// ParseHeader decodes and validates a header against limits.
func ParseHeader(b []byte, h *Header, maxFrame, maxMeta uint32) error {
	_ = b[HeaderSize-1]
	if binary.BigEndian.Uint16(b[0:2]) != Magic {
		return ErrBadMagic
	}
	h.Version = b[2]
	h.Type = Type(b[3])
	h.Flags = b[4]
	h.Codec = b[5]
	h.Compress = b[6]
	h.ID = binary.BigEndian.Uint32(b[8:12])
	h.MetaLen = binary.BigEndian.Uint32(b[12:16])
	h.BodyLen = binary.BigEndian.Uint32(b[16:20])
	if h.Version != Version {
		return &VersionError{Got: h.Version, ID: h.ID}
	}
	if !h.Type.Valid() {
		return fmt.Errorf("%w %d", ErrBadType, uint8(h.Type))
	}
	if h.MetaLen > maxMeta {
		return fmt.Errorf("%w: metadata %d bytes, limit %d", ErrMetaTooBig, h.MetaLen, maxMeta)
	}
	// Compare in 64 bits: the sum of two uint32 can overflow.
	if uint64(h.MetaLen)+uint64(h.BodyLen) > uint64(maxFrame) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooBig, uint64(h.MetaLen)+uint64(h.BodyLen), maxFrame)
	}
	return nil
}

// Frame is a decoded frame. Meta and Body alias a pooled buffer that
// Release returns; neither may be used after Release.
type Frame struct {
	Header
	Meta []byte
	Body []byte
	buf  *[]byte
}

// Release returns the frame's buffer to the pool. It is safe to call on a
// frame without a buffer and more than once.
func (f *Frame) Release() {
	if f.buf != nil {
		putBuf(f.buf)
		f.buf = nil
	}
	f.Meta, f.Body = nil, nil
}

// Reader reads frames from a byte stream.
type Reader struct {
	r        *bufio.Reader
	maxFrame uint32
	maxMeta  uint32
	hdr      [HeaderSize]byte
}

// NewReader returns a Reader over r with the given limits (0 = default).
func NewReader(r io.Reader, bufSize int, maxFrame, maxMeta int) *Reader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	if maxMeta <= 0 {
		maxMeta = DefaultMaxMetadata
	}
	if bufSize <= 0 {
		bufSize = 32 << 10
	}
	return &Reader{r: bufio.NewReaderSize(r, bufSize), maxFrame: uint32(min(maxFrame, 1<<31)), maxMeta: uint32(min(maxMeta, 1<<31))}
}

// ReadFrame reads the next frame into f. The header is validated before
// any buffer is taken, so an oversized length allocates nothing. On error
// the stream is no longer usable except after a *VersionError, where the
// header (and f.ID) is filled in for an answer.
func (r *Reader) ReadFrame(f *Frame) error {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return err
	}
	if err := ParseHeader(r.hdr[:], &f.Header, r.maxFrame, r.maxMeta); err != nil {
		return err
	}
	n := int(f.MetaLen) + int(f.BodyLen)
	if n == 0 {
		f.Meta, f.Body, f.buf = nil, nil, nil
		return nil
	}
	bp := getBuf(n)
	b := (*bp)[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		putBuf(bp)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	f.buf = bp
	f.Meta = b[:f.MetaLen:f.MetaLen]
	f.Body = b[f.MetaLen:]
	return nil
}

// Builder assembles one outgoing frame in a pooled buffer: header space,
// then metadata, then body appended in place (codecs append straight into
// it), then Finish patches the lengths.
type Builder struct {
	bp       *[]byte
	B        []byte
	metaEnd  int
	hdr      Header
	finished bool
}

// Begin starts a frame.
func (fb *Builder) Begin(t Type, flags, codec, compress uint8, id uint32) {
	if fb.bp == nil {
		fb.bp = getBuf(4 << 10)
	}
	fb.B = (*fb.bp)[:HeaderSize]
	fb.hdr = Header{Version: Version, Type: t, Flags: flags, Codec: codec, Compress: compress, ID: id}
	fb.metaEnd = -1
	fb.finished = false
}

// EndMeta marks the end of metadata; what is appended after it is body.
func (fb *Builder) EndMeta() { fb.metaEnd = len(fb.B) }

// BodyStart is the offset of the body in B (valid after EndMeta).
func (fb *Builder) BodyStart() int { return fb.metaEnd }

// Finish patches the header and returns the whole frame.
func (fb *Builder) Finish() []byte {
	if fb.metaEnd < 0 {
		fb.metaEnd = len(fb.B)
	}
	fb.hdr.MetaLen = uint32(fb.metaEnd - HeaderSize)
	fb.hdr.BodyLen = uint32(len(fb.B) - fb.metaEnd)
	PutHeader(fb.B, &fb.hdr)
	// Keep the grown buffer for reuse.
	*fb.bp = fb.B[:0]
	fb.finished = true
	return fb.B
}

// SetFlags changes the flags of the frame being built.
func (fb *Builder) SetFlags(flags uint8) { fb.hdr.Flags = flags }

// SetCompress changes the compression id of the frame being built.
func (fb *Builder) SetCompress(id uint8) { fb.hdr.Compress = id }

// CompressID is the compressor id the frame's body is marked with.
func (fb *Builder) CompressID() uint8 { return fb.hdr.Compress }

// Detach finishes the frame (if Finish was not called yet) and hands it
// over together with the pooled buffer behind it: the frame stays valid
// until the new owner returns buf with PutBuffer (or drops it), and fb no
// longer refers to either, so Release is a no-op and Begin takes a fresh
// buffer. A writer uses it to queue a large frame without copying it.
func (fb *Builder) Detach() (frame []byte, buf *[]byte) {
	if !fb.finished {
		fb.Finish()
	}
	frame, buf = fb.B, fb.bp
	fb.B, fb.bp = nil, nil
	return frame, buf
}

// Release returns the buffer to the pool.
func (fb *Builder) Release() {
	if fb.bp != nil {
		if cap(fb.B) > cap(*fb.bp) {
			*fb.bp = fb.B[:0]
		}
		putBuf(fb.bp)
		fb.bp = nil
		fb.B = nil
	}
}

// AppendControl appends a frame with no metadata and the given body; used
// for ping, pong, cancel, goaway and window updates.
func AppendControl(dst []byte, t Type, id uint32, body []byte) []byte {
	var h [HeaderSize]byte
	PutHeader(h[:], &Header{Version: Version, Type: t, ID: id, BodyLen: uint32(len(body))})
	dst = append(dst, h[:]...)
	return append(dst, body...)
}
