package spitest

import (
	"bytes"
	"testing"

	"github.com/kiterpc/kite/spi"
)

// FuzzCompressor is the body of a compressor's FuzzDecompress target:
// arbitrary bytes and size limits go to Decompress, the path every
// compressed body from the network takes, and the same bytes serve as a
// plaintext for Compress. Decompress must never panic, never return more
// than the limit, never allocate far beyond it, keep dst's bytes, leave
// dst as it was on failure with a DataLoss or ResourceExhausted code, and
// agree with itself across limits: a body that decodes under a generous
// limit decodes identically under any limit it fits, and fails with
// ResourceExhausted under any it does not. Compress output must decode
// back to the input under exactly its size.
//
// It seeds the corpus with c's own output for a few payloads; add
// format-specific seeds with f.Add before calling it.
func FuzzCompressor(f *testing.F, c spi.Compressor) {
	for _, p := range [][]byte{{}, {'k'}, []byte("hello, hello, hello, hello"), CompressiblePayload(4 << 10), RandomPayload(512)} {
		z, err := c.Compress(nil, p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(z, uint16(len(p)))
		f.Add(z, uint16(max(len(p)-1, 0)))
	}
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
