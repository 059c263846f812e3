package gzip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"

	"github.com/klauspost/compress/gzip"

	"github.com/kiterpc/kite/spi"
)

// Name is the catalog name of the compressor, and gRPC's encoding name
// ("grpc-encoding: gzip").
const Name = "gzip"

// Levels, fastest first. Decoding speed is about the same for all.
const (
	LevelFastest Level = "fastest" // gzip level 1
	LevelDefault Level = "default" // klauspost/compress's default, level 5
	LevelBest    Level = "best"    // gzip level 9; slow to encode
)

// Config is the compressor's kite.hcl block.
type Config struct {
	// Level is "fastest", "default" or "best", or a gzip level number
	// 1-9; empty means "default". A JSON number is accepted too.
	Level Level `json:"level"`
}

// Level is a compression level by name or gzip number.
type Level string

// UnmarshalJSON accepts a string or a number, so that both level = "best"
// and level = 6 work in kite.hcl.
func (l *Level) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*l = Level(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("gzip: level must be a name or a number, got %s", b)
	}
	*l = Level(s)
	return nil
}

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindCompressor,
		Name:    Name,
		Version: "1.0.0",
		Doc:     "gzip, RFC 1952 (klauspost/compress/gzip): for gRPC interop, grpc-go's one built-in compressor; slower than zstd for Kite-to-Kite traffic",
		Schema: spi.Schema{
			{Name: "level", Type: spi.TypeString, Doc: `"fastest", "default" (the default), "best", or a gzip level 1-9`},
		},
		New: func(cfg spi.Config) (any, error) {
			var c Config
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
			return NewWithConfig(c)
		},
	})
}

// Compressor is the gzip compressor. It is safe for concurrent use:
// writers and readers, whose deflate state is large (hundreds of KiB for
// a writer, a 32 KiB window and tables for a reader), are pooled and each
// serves one call at a time.
//
// It does not implement spi.DecodedSizer. gzip's only size field, the
// ISIZE trailer, is the decoded size modulo 2^32 of the last member
// only, sits after the data and is unverified until the whole body is
// decoded: charging a server's memory budget by it would let a peer
// understate a body for free. A server therefore charges a gzip body the
// whole max frame, and Decompress enforces maxSize while decoding.
type Compressor struct {
	level   Level
	glevel  int
	writers sync.Pool // *writer
	readers sync.Pool // *reader
}

// writer is a pooled gzip writer with the appending sink it writes to.
type writer struct {
	zw  *gzip.Writer
	out appender
}

// appender is an io.Writer that appends to a byte slice.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// reader is a pooled gzip reader with the bytes.Reader it reads from
// (an io.ByteReader, so gzip adds no bufio.Reader of its own).
type reader struct {
	zr    gzip.Reader
	src   bytes.Reader
	probe [1]byte // tells end of input from more output when dst is full
}

// New returns a gzip compressor at the default level.
func New() *Compressor {
	c, err := NewWithConfig(Config{})
	if err != nil {
		panic(err) // the default configuration is valid
	}
	return c
}

// NewWithConfig returns a gzip compressor configured by cfg.
func NewWithConfig(cfg Config) (*Compressor, error) {
	var level int
	switch cfg.Level {
	case "", LevelDefault:
		cfg.Level, level = LevelDefault, gzip.DefaultCompression
	case LevelFastest:
		level = gzip.BestSpeed
	case LevelBest:
		level = gzip.BestCompression
	default:
		n, err := strconv.Atoi(string(cfg.Level))
		if err != nil || n < 1 || n > 9 {
			return nil, fmt.Errorf("gzip: unknown level %q (want %q, %q, %q or a number 1-9)",
				cfg.Level, LevelFastest, LevelDefault, LevelBest)
		}
		level = n
	}
	return &Compressor{level: cfg.Level, glevel: level}, nil
}

// Name returns "gzip".
func (*Compressor) Name() string { return Name }

// ID returns spi.CompressGzip.
func (*Compressor) ID() uint8 { return spi.CompressGzip }

// Level returns the configured level.
func (c *Compressor) Level() Level { return c.level }

// Compress appends one complete gzip member (RFC 1952: header, deflate
// data, CRC-32 and size trailer) holding src to dst. The header carries
// no name and no modification time. An empty src still gives a full
// 20-byte member, which gRPC peers require of a compressed message.
func (c *Compressor) Compress(dst, src []byte) ([]byte, error) {
	w, _ := c.writers.Get().(*writer)
	if w == nil {
		w = new(writer)
		zw, err := gzip.NewWriterLevel(&w.out, c.glevel)
		if err != nil {
			return dst, spi.WrapError(spi.Internal, err, "gzip: building a writer")
		}
		w.zw = zw
	} else {
		w.zw.Reset(&w.out)
	}
	defer c.writers.Put(w)
	defer func() { w.out.b = nil }() // drop the reference to dst
	l := len(dst)
	w.out.b = dst
	if _, err := w.zw.Write(src); err != nil {
		return dst[:l], spi.WrapError(spi.Internal, err, "gzip: compressing")
	}
	if err := w.zw.Close(); err != nil {
		return dst[:l], spi.WrapError(spi.Internal, err, "gzip: compressing")
	}
	return w.out.b, nil
}

// maxRatio bounds what one byte of deflate data can decode to: at best a
// 258-byte match costs two bits (a 1-bit length code and a 1-bit distance
// code), 1032:1. It caps the first allocation a body's size trailer can
// ask for, so a small body with a lying trailer costs little.
const maxRatio = 1032

// Decompress appends the decoding of the gzip members in src to dst;
// several concatenated members decode to the concatenation of their
// contents, as gzip readers do. An empty src decodes to nothing.
//
// The output is read into dst, which grows geometrically but never past
// one byte over maxSize: that byte is how an oversized body is noticed,
// so a decompression bomb fails with ResourceExhausted having allocated
// at most about maxSize. The last member's size trailer is used only as
// a hint for the first allocation, capped by maxSize and by deflate's
// maximum ratio. Every member's CRC-32 and size are checked; a corrupt
// body fails with DataLoss and leaves dst as it was.
func (c *Compressor) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	if len(src) == 0 {
		return dst, nil
	}
	maxSize = max(maxSize, 0)
	r, _ := c.readers.Get().(*reader)
	if r == nil {
		r = new(reader)
	}
	defer c.readers.Put(r)
	r.src.Reset(src)
	defer r.src.Reset(nil) // drop the reference to src
	if err := r.zr.Reset(&r.src); err != nil {
		return dst, corrupt(err)
	}
	l := len(dst)
	if len(src) >= 18 { // a header and a trailer; ISIZE ends the trailer
		isize := int(uint32(src[len(src)-4]) | uint32(src[len(src)-3])<<8 | uint32(src[len(src)-2])<<16 | uint32(src[len(src)-1])<<24)
		dst = slices.Grow(dst, min(isize, maxSize, len(src)*maxRatio))
	}
	for {
		if len(dst) == cap(dst) {
			// Before growing, see whether there is any more output.
			n, err := r.zr.Read(r.probe[:])
			if n > 0 {
				if len(dst)-l+n > maxSize {
					return dst[:l], tooLarge(maxSize)
				}
				dst = append(dst, r.probe[:n]...)
			}
			if err == io.EOF {
				return dst, nil
			}
			if err != nil {
				return dst[:l], corrupt(err)
			}
			if n == 0 {
				continue
			}
			// Grow geometrically, but never past one byte over maxSize.
			room := min(max(len(dst)-l, 4<<10), maxSize+1-(len(dst)-l))
			dst = slices.Grow(dst, room)
		}
		limit := min(cap(dst), l+maxSize+1)
		n, err := r.zr.Read(dst[len(dst):limit])
		dst = dst[:len(dst)+n]
		if len(dst)-l > maxSize {
			return dst[:l], tooLarge(maxSize)
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst[:l], corrupt(err)
		}
	}
}

func tooLarge(maxSize int) error {
	return spi.Errorf(spi.ResourceExhausted, "gzip: body decompresses to more than the limit of %d bytes", maxSize)
}

func corrupt(err error) error {
	switch err {
	case io.EOF, io.ErrUnexpectedEOF:
		return spi.WrapError(spi.DataLoss, err, "gzip: truncated body, or stray bytes after a member")
	case gzip.ErrHeader:
		return spi.WrapError(spi.DataLoss, err, "gzip: corrupt body: bad header")
	case gzip.ErrChecksum:
		return spi.WrapError(spi.DataLoss, err, "gzip: corrupt body: CRC-32 or size mismatch")
	}
	return spi.WrapError(spi.DataLoss, err, "gzip: corrupt body")
}
