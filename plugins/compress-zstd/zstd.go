package zstd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/kiterpc/kite/spi"
)

// Name is the catalog name of the compressor.
const Name = "zstd"

// Levels, fastest first. Decoding speed is about the same for all.
const (
	LevelFastest Level = "fastest" // zstd level ~1
	LevelDefault Level = "default" // zstd level ~3
	LevelBetter  Level = "better"  // zstd level ~7
	LevelBest    Level = "best"    // zstd level ~11; slow to encode
)

// maxWindow bounds the history a frame decoded as a stream may ask the
// decoder to keep, which is memory beyond the output. Only frames without
// a content size (written by streaming encoders) are decoded that way;
// 8 MiB is what zstd writers use by default at the levels RPC peers pick.
const maxWindow = 8 << 20

// Config is the compressor's kite.hcl block.
type Config struct {
	// Level is "fastest", "default", "better" or "best", or a zstd level
	// number 1-22 (mapped to the nearest of those four); empty means
	// "default". A JSON number is accepted too.
	Level Level `json:"level"`
	// Checksum appends a content checksum to every frame (4 bytes; costs
	// a hash per body). Nil means true: corruption is then detected.
	Checksum *bool `json:"checksum"`
}

// Level is a compression level by name or zstd number.
type Level string

// UnmarshalJSON accepts a string or a number, so that both level = "best"
// and level = 3 work in kite.hcl.
func (l *Level) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*l = Level(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("zstd: level must be a name or a number, got %s", b)
	}
	*l = Level(s)
	return nil
}

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindCompressor,
		Name:    Name,
		Version: "1.0.0",
		Doc:     "Zstandard (klauspost/compress/zstd): the best ratio, at more CPU than snappy or s2",
		Schema: spi.Schema{
			{Name: "level", Type: spi.TypeString, Doc: `"fastest", "default" (the default), "better", "best", or a zstd level 1-22`},
			{Name: "checksum", Type: spi.TypeBool, Doc: "append a content checksum to each frame (default true)"},
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

// Compressor is the zstd compressor. It is safe for concurrent use: one
// encoder and one decoder are shared, and their EncodeAll/DecodeAll run
// concurrently on internally pooled state (up to GOMAXPROCS at once).
type Compressor struct {
	level Level
	enc   *zstd.Encoder
	dec   *zstd.Decoder // DecodeAll, limited to the capacity it is given
	// streams holds synchronous stream decoders for the rare frame that
	// does not state its decoded size: they decode into a buffer that
	// grows only up to maxSize.
	streams sync.Pool
}

// New returns a zstd compressor at the default level.
func New() *Compressor {
	c, err := NewWithConfig(Config{})
	if err != nil {
		panic(err) // the default configuration is valid
	}
	return c
}

// NewWithConfig returns a zstd compressor configured by cfg.
func NewWithConfig(cfg Config) (*Compressor, error) {
	var level zstd.EncoderLevel
	switch cfg.Level {
	case "", LevelDefault:
		cfg.Level, level = LevelDefault, zstd.SpeedDefault
	case LevelFastest:
		level = zstd.SpeedFastest
	case LevelBetter:
		level = zstd.SpeedBetterCompression
	case LevelBest:
		level = zstd.SpeedBestCompression
	default:
		n, err := strconv.Atoi(string(cfg.Level))
		if err != nil || n < 1 || n > 22 {
			return nil, fmt.Errorf("zstd: unknown level %q (want %q, %q, %q, %q or a number 1-22)",
				cfg.Level, LevelFastest, LevelDefault, LevelBetter, LevelBest)
		}
		level = zstd.EncoderLevelFromZstd(n)
	}
	checksum := cfg.Checksum == nil || *cfg.Checksum
	// With a nil writer the encoder only serves EncodeAll, which writes
	// the content size into every frame header: that is what lets the
	// peer check maxSize before decoding.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderCRC(checksum))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	// DecodeAll keeps its history in dst, so the window size costs no
	// memory there and needs no bound beyond maxSize.
	dec, err := zstd.NewReader(nil, zstd.WithDecodeAllCapLimit(true)) // never grow dst: Decompress sizes it
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return &Compressor{level: cfg.Level, enc: enc, dec: dec}, nil
}

// Name returns "zstd".
func (*Compressor) Name() string { return Name }

// ID returns spi.CompressZstd.
func (*Compressor) ID() uint8 { return spi.CompressZstd }

// Level returns the configured level.
func (c *Compressor) Level() Level { return c.level }

// Compress appends one zstd frame holding src to dst. An empty src
// compresses to nothing, and nothing decompresses to an empty body.
func (c *Compressor) Compress(dst, src []byte) ([]byte, error) {
	return c.enc.EncodeAll(src, dst), nil
}

// DecodedLen implements spi.DecodedSizer: the content size in the first
// frame's header, as Compress writes it, or -1 when that frame states
// none (streaming encoders). A body of several frames is charged its
// first frame's size and then fails Decompress's limit: Kite peers send
// one frame per body.
func (c *Compressor) DecodedLen(src []byte) (int, error) {
	if len(src) == 0 {
		return 0, nil
	}
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return 0, spi.WrapError(spi.DataLoss, err, "zstd: corrupt frame header")
	}
	if !h.HasFCS || h.Skippable || h.FrameContentSize > 1<<31 {
		return -1, nil
	}
	return int(h.FrameContentSize), nil
}

// Decompress appends the decoding of the zstd frames in src to dst.
//
// A frame written by Compress (or any EncodeAll-style encoder) states its
// decoded size in its header; that size is checked against maxSize and
// then exactly that much room is made in dst before decoding, so an
// oversized body costs nothing. Frames without a stated size are decoded
// as a stream into a buffer that grows only up to maxSize.
func (c *Compressor) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	if len(src) == 0 {
		return dst, nil
	}
	maxSize = max(maxSize, 0)
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return dst, spi.WrapError(spi.DataLoss, err, "zstd: corrupt frame header")
	}
	if h.HasFCS && !h.Skippable {
		if h.FrameContentSize > uint64(maxSize) {
			return dst, spi.Errorf(spi.ResourceExhausted, "zstd: body decompresses to %d bytes, over the limit of %d",
				h.FrameContentSize, maxSize)
		}
		l, n := len(dst), int(h.FrameContentSize)
		dst = slices.Grow(dst, n)
		// The cap limit makes DecodeAll fail rather than allocate if the
		// input holds more than this frame.
		out, err := c.dec.DecodeAll(src, dst[:l:l+n])
		switch {
		case err == nil:
			return out, nil
		case !errors.Is(err, zstd.ErrDecoderSizeExceeded):
			return dst[:l], spi.WrapError(spi.DataLoss, err, "zstd: corrupt body")
		}
		// More frames follow the first: decode them all as a stream.
		dst = dst[:l]
	}
	return c.decodeStream(dst, src, maxSize)
}

func (c *Compressor) decodeStream(dst, src []byte, maxSize int) ([]byte, error) {
	d, _ := c.streams.Get().(*zstd.Decoder)
	if d == nil {
		var err error
		// Concurrency 1 decodes synchronously: no goroutines, so an idle
		// decoder dropped by the pool needs no Close.
		d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxWindow), zstd.WithDecodeBuffersBelow(0))
		if err != nil {
			return dst, spi.WrapError(spi.Internal, err, "zstd: building a stream decoder")
		}
	}
	defer c.streams.Put(d)
	if err := d.Reset(bytes.NewReader(src)); err != nil {
		return dst, spi.WrapError(spi.DataLoss, err, "zstd: corrupt frame")
	}
	defer d.Reset(nil) // drop the reference to src
	l := len(dst)
	for {
		if len(dst) == cap(dst) {
			// Grow geometrically, but never past one byte over maxSize:
			// that byte is how an oversized body is noticed.
			room := min(max(len(dst)-l, 4<<10), maxSize+1-(len(dst)-l))
			dst = slices.Grow(dst, room)
		}
		limit := min(cap(dst), l+maxSize+1)
		n, err := d.Read(dst[len(dst):limit])
		dst = dst[:len(dst)+n]
		if len(dst)-l > maxSize {
			return dst[:l], spi.Errorf(spi.ResourceExhausted, "zstd: body decompresses to more than the limit of %d bytes", maxSize)
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst[:l], spi.WrapError(spi.DataLoss, err, "zstd: corrupt body")
		}
	}
}

// Close releases the shared decoder. The compressor must not be used
// afterwards.
func (c *Compressor) Close() error {
	c.dec.Close()
	return c.enc.Close()
}
