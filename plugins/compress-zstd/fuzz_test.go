package zstd_test

import (
	"bytes"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"

	zstd "github.com/kiterpc/kite/plugins/compress-zstd"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// FuzzDecompress feeds arbitrary bytes and size limits to Decompress, the
// path every compressed body from the network takes, and uses the same
// bytes as a plaintext for Compress. Decompress must never panic, never
// return more than the limit, never allocate far beyond it, keep dst's
// bytes, leave dst as it was on failure with a DataLoss or
// ResourceExhausted code, and agree with itself across limits: a body
// that decodes under a generous limit decodes identically under any
// limit it fits, and fails with ResourceExhausted under any it does not.
// Compress output must decode back to the input under exactly its size.
func FuzzDecompress(f *testing.F) {
	c := zstd.New()
	f.Cleanup(func() { _ = c.Close() })
	for _, p := range [][]byte{{}, {'k'}, []byte("hello, hello, hello, hello"), spitest.CompressiblePayload(4 << 10), spitest.RandomPayload(512)} {
		z, err := c.Compress(nil, p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(z, uint16(len(p)))
		f.Add(z, uint16(max(len(p)-1, 0)))
	}
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
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		const generous = 256 << 10
		prefix := []byte("dst!")
		maxSize := int(limit)

		full, ferr := checkDecompress(t, c, prefix, data, generous)
		got, err := checkDecompress(t, c, prefix, data, maxSize)
		if ferr == nil {
			switch {
			case len(full) <= maxSize && err != nil:
				t.Fatalf("%d-byte body fits the limit %d but failed: %v", len(full), maxSize, err)
			case len(full) <= maxSize && !bytes.Equal(got, full):
				t.Fatalf("decoding differs between limits %d and %d", maxSize, generous)
			case len(full) > maxSize && spi.CodeOf(err) != spi.ResourceExhausted:
				t.Fatalf("%d-byte body over the limit %d gave %v, want ResourceExhausted", len(full), maxSize, err)
			}
		}

		// The same bytes as a plaintext.
		z, err := c.Compress(append([]byte(nil), prefix...), data)
		if err != nil {
			t.Fatalf("Compress: %v", err)
		}
		if !bytes.Equal(z[:len(prefix)], prefix) {
			t.Fatal("Compress overwrote dst")
		}
		back, err := checkDecompress(t, c, prefix, z[len(prefix):], len(data))
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("round trip of %d bytes: %d bytes back, %v", len(data), len(back), err)
		}
		if len(data) > 0 {
			if _, err := checkDecompress(t, c, prefix, z[len(prefix):], len(data)-1); spi.CodeOf(err) != spi.ResourceExhausted {
				t.Fatalf("%d-byte body under a limit of %d: %v, want ResourceExhausted", len(data), len(data)-1, err)
			}
		}
	})
}

// checkDecompress runs Decompress with a dst holding prefix, checks the
// contract's invariants and returns the decoded bytes (without prefix).
func checkDecompress(t *testing.T, c spi.Compressor, prefix, src []byte, maxSize int) ([]byte, error) {
	t.Helper()
	dst := append(make([]byte, 0, len(prefix)), prefix...)
	out, err := c.Decompress(dst, src, maxSize)
	if len(out) < len(prefix) || !bytes.Equal(out[:len(prefix)], prefix) {
		t.Fatalf("Decompress lost dst's bytes (limit %d, err %v)", maxSize, err)
	}
	// Room for the limit, the size-class rounding of the allocator and
	// geometric growth when a body without a stated size is streamed.
	if bound := 2*(len(prefix)+maxSize+1) + 8<<10; cap(out) > bound {
		t.Fatalf("Decompress grew dst to %d bytes for a limit of %d (err %v)", cap(out), maxSize, err)
	}
	if err != nil {
		if code := spi.CodeOf(err); code != spi.DataLoss && code != spi.ResourceExhausted {
			t.Fatalf("Decompress failed with code %v, want DataLoss or ResourceExhausted: %v", code, err)
		}
		if len(out) != len(prefix) {
			t.Fatalf("Decompress failed but returned %d bytes past dst: %v", len(out)-len(prefix), err)
		}
		return nil, err
	}
	if n := len(out) - len(prefix); n > maxSize {
		t.Fatalf("Decompress returned %d bytes, over the limit of %d", n, maxSize)
	}
	return out[len(prefix):], nil
}
