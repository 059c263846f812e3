package snappy

import (
	"slices"

	"github.com/golang/snappy"

	"github.com/kiterpc/kite/spi"
)

// Name is the catalog name of the compressor.
const Name = "snappy"

// maxRatio bounds how many bytes one byte of a snappy block can decode
// to: the densest element is a 3-byte copy of 64 bytes (21.3x). A header
// that claims more than this for its input is corrupt, and is refused
// before anything is allocated.
const maxRatio = 22

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindCompressor,
		Name:    Name,
		Version: "1.0.0",
		Doc:     "Snappy block format (github.com/golang/snappy): fast, modest ratio",
		New: func(cfg spi.Config) (any, error) {
			var none struct{}
			if err := cfg.Decode(&none); err != nil {
				return nil, err
			}
			return New(), nil
		},
	})
}

// Compressor is the snappy compressor. The zero value is ready to use and
// safe for concurrent use: snappy's block functions keep no state.
type Compressor struct{}

// New returns the snappy compressor.
func New() *Compressor { return &Compressor{} }

// Name returns "snappy".
func (*Compressor) Name() string { return Name }

// ID returns spi.CompressSnappy.
func (*Compressor) ID() uint8 { return spi.CompressSnappy }

// Compress appends the snappy block encoding of src to dst.
func (*Compressor) Compress(dst, src []byte) ([]byte, error) {
	n := snappy.MaxEncodedLen(len(src))
	if n < 0 {
		return dst, spi.Errorf(spi.ResourceExhausted, "snappy: %d bytes is too large for one block", len(src))
	}
	// Encode writes into its dst argument when that is long enough, so
	// hand it the spare capacity after dst's bytes.
	l := len(dst)
	dst = slices.Grow(dst, n)
	out := snappy.Encode(dst[l:l+n], src)
	return dst[:l+len(out)], nil
}

// DecodedLen implements spi.DecodedSizer: a snappy block's header states
// its decoded length.
func (*Compressor) DecodedLen(src []byte) (int, error) {
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return 0, spi.WrapError(spi.DataLoss, err, "snappy: corrupt block header")
	}
	return n, nil
}

// Decompress appends the decoding of the snappy block src to dst. The
// block's header states its decoded length, so a body over maxSize is
// refused before any allocation.
func (*Compressor) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return dst, spi.WrapError(spi.DataLoss, err, "snappy: corrupt block header")
	}
	if n > maxSize {
		return dst, spi.Errorf(spi.ResourceExhausted, "snappy: body decompresses to %d bytes, over the limit of %d", n, maxSize)
	}
	if n/maxRatio > len(src) {
		return dst, spi.Errorf(spi.DataLoss, "snappy: corrupt block: %d bytes cannot decode to %d", len(src), n)
	}
	l := len(dst)
	dst = slices.Grow(dst, n)
	if _, err := snappy.Decode(dst[l:l+n], src); err != nil {
		return dst[:l], spi.WrapError(spi.DataLoss, err, "snappy: corrupt block")
	}
	return dst[:l+n], nil
}
