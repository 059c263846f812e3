package zstd_test

import (
	"bytes"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"

	zstd "github.com/kiterpc/kite/plugins/compress-zstd"
	"github.com/kiterpc/kite/spi/spitest"
)

// FuzzDecompress runs the shared compressor fuzz contract
// (spitest.FuzzCompressor) with seeds specific to this format.
func FuzzDecompress(f *testing.F) {
	c := zstd.New()
	f.Cleanup(func() { _ = c.Close() })
	// A frame without a content size, as streaming encoders write it.
	var buf bytes.Buffer
	w, err := kzstd.NewWriter(&buf, kzstd.WithEncoderConcurrency(1))
	if err != nil {
		f.Fatal(err)
	}
	if _, err := w.Write(spitest.CompressiblePayload(6 << 10)); err != nil {
		f.Fatal(err)
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes(), uint16(6<<10))
	f.Add(buf.Bytes(), uint16(100))
	// Two frames back to back, and a skippable frame before one.
	one, err := c.Compress(nil, []byte("first frame"))
	if err != nil {
		f.Fatal(err)
	}
	two, err := c.Compress(append([]byte(nil), one...), []byte("second frame"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(two, uint16(64))
	skip := []byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4}
	f.Add(append(skip, one...), uint16(64))
	f.Add(one[:len(one)-3], uint16(64)) // truncated
	spitest.FuzzCompressor(f, c)
}
