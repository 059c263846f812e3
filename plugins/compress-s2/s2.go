package s2

import (
	"fmt"
	"slices"

	"github.com/klauspost/compress/s2"

	"github.com/kiterpc/kite/spi"
)

// Name is the catalog name of the compressor.
const Name = "s2"

// Levels, fastest first. Each trades encoding speed for ratio; decoding
// speed is the same for all of them.
const (
	LevelDefault = "default" // s2.Encode: faster than snappy, similar ratio
	LevelBetter  = "better"  // s2.EncodeBetter: ~2x slower to encode, smaller
	LevelBest    = "best"    // s2.EncodeBest: much slower to encode, smallest
)

// Config is the compressor's kite.hcl block.
type Config struct {
	// Level is "default", "better" or "best"; empty means "default".
	Level string `json:"level"`
}

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindCompressor,
		Name:    Name,
		Version: "1.0.0",
		Doc:     "S2 block format (klauspost/compress/s2): snappy's successor, faster with a better ratio",
		Schema: spi.Schema{
			{Name: "level", Type: spi.TypeString, Doc: `"default" (fastest), "better" or "best"`},
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

// Compressor is the S2 compressor; safe for concurrent use, since the s2
// block functions keep no state between calls.
type Compressor struct {
	level  string
	encode func(dst, src []byte) []byte
}

// New returns an S2 compressor at the default level.
func New() *Compressor {
	c, _ := NewWithConfig(Config{})
	return c
}

// NewWithConfig returns an S2 compressor configured by c.
func NewWithConfig(c Config) (*Compressor, error) {
	switch c.Level {
	case "", LevelDefault:
		return &Compressor{level: LevelDefault, encode: s2.Encode}, nil
	case LevelBetter:
		return &Compressor{level: LevelBetter, encode: s2.EncodeBetter}, nil
	case LevelBest:
		return &Compressor{level: LevelBest, encode: s2.EncodeBest}, nil
	}
	return nil, fmt.Errorf("s2: unknown level %q (want %q, %q or %q)", c.Level, LevelDefault, LevelBetter, LevelBest)
}

// Name returns "s2".
func (*Compressor) Name() string { return Name }

// ID returns spi.CompressS2.
func (*Compressor) ID() uint8 { return spi.CompressS2 }

// Level returns the configured level.
func (c *Compressor) Level() string { return c.level }

// Compress appends the S2 block encoding of src to dst.
func (c *Compressor) Compress(dst, src []byte) ([]byte, error) {
	n := s2.MaxEncodedLen(len(src))
	if n < 0 {
		return dst, spi.Errorf(spi.ResourceExhausted, "s2: %d bytes is too large for one block", len(src))
	}
	// The encoders write into their dst argument when its capacity is
	// enough, so hand them the spare capacity after dst's bytes.
	l := len(dst)
	dst = slices.Grow(dst, n)
	out := c.encode(dst[l:l+n], src)
	return dst[:l+len(out)], nil
}

// DecodedLen implements spi.DecodedSizer: an S2 block's header states its
// decoded length.
func (*Compressor) DecodedLen(src []byte) (int, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return 0, spi.WrapError(spi.DataLoss, err, "s2: corrupt block header")
	}
	return n, nil
}

// Decompress appends the decoding of the S2 (or snappy) block src to dst.
// The block header states the decoded length, so a body over maxSize is
// refused before any allocation.
func (*Compressor) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return dst, spi.WrapError(spi.DataLoss, err, "s2: corrupt block header")
	}
	if n > maxSize {
		return dst, spi.Errorf(spi.ResourceExhausted, "s2: body decompresses to %d bytes, over the limit of %d", n, maxSize)
	}
	l := len(dst)
	dst = slices.Grow(dst, n)
	if _, err := s2.Decode(dst[l:l+n], src); err != nil {
		return dst[:l], spi.WrapError(spi.DataLoss, err, "s2: corrupt block")
	}
	return dst[:l+n], nil
}
