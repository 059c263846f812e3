package gzip_test

import (
	"bytes"
	stdgzip "compress/gzip"
	"testing"

	gzip "github.com/kiterpc/kite/plugins/compress-gzip"
	"github.com/kiterpc/kite/spi/spitest"
)

// FuzzDecompress runs the shared compressor fuzz contract
// (spitest.FuzzCompressor) with seeds specific to this format.
func FuzzDecompress(f *testing.F) {
	c := gzip.New()
	// A member from the standard library's writer, with a name, a comment
	// and an extra field in its header.
	var buf bytes.Buffer
	w := stdgzip.NewWriter(&buf)
	w.Name, w.Comment, w.Extra = "body.json", "from compress/gzip", []byte{'K', 'T', 2, 0, 1, 2}
	if _, err := w.Write(spitest.CompressiblePayload(6 << 10)); err != nil {
		f.Fatal(err)
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes(), uint16(6<<10))
	f.Add(buf.Bytes(), uint16(100))
	// Two members back to back, and one followed by garbage.
	one, err := c.Compress(nil, []byte("first member"))
	if err != nil {
		f.Fatal(err)
	}
	two, err := c.Compress(bytes.Clone(one), []byte("second member"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(two, uint16(64))
	f.Add(append(bytes.Clone(one), 0, 0, 0, 0), uint16(64))
	f.Add(one[:len(one)-3], uint16(64)) // truncated
	bad := bytes.Clone(one)
	bad[len(bad)-6] ^= 1 // CRC-32
	f.Add(bad, uint16(64))
	spitest.FuzzCompressor(f, c)
}
