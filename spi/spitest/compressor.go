package spitest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/kiterpc/kite/spi"
)

// TestCompressor runs the conformance suite for spi.Compressor against c.
// Any compressor, compiled in or reached through an out-of-process
// bridge, must pass it.
//
// The contract checked, beyond the interface's comments:
//   - Name is non-empty and ID stable across calls.
//   - Round trip of 0 B, 1 B, 1 KiB, 64 KiB and 1 MiB of compressible
//     text and of 64 KiB and 1 MiB of incompressible random bytes.
//   - Compress and Decompress append: the bytes already in dst are kept,
//     whether dst has spare capacity or none.
//   - maxSize bounds the decompressed bytes appended (dst's existing
//     bytes do not count): exactly maxSize succeeds, one byte less fails
//     with a spi.ResourceExhausted error. A small maxSize against a
//     highly compressed 8 MiB body ("zip bomb") fails without the
//     compressor allocating anything near the full output: the suite
//     measures the bytes allocated by the failing call.
//   - Corrupt input gets an error, never a panic: every truncation of a
//     compressed body must be rejected; random bytes and bit flips may
//     decode (block formats carry no checksum) but never panic and never
//     return more than maxSize bytes.
//   - The compressor is safe for concurrent use (run under -race).
//
// The allocation check reads runtime.MemStats around one call; run the
// suite from a test that is not t.Parallel with allocation-heavy tests.
func TestCompressor(t *testing.T, c spi.Compressor) {
	t.Helper()
	if c == nil {
		t.Fatal("spitest: TestCompressor needs a Compressor")
	}
	t.Run("Identity", func(t *testing.T) {
		if c.Name() == "" {
			t.Error("Name() is empty")
		}
		if name, id := c.Name(), c.ID(); c.Name() != name || c.ID() != id {
			t.Error("Name() or ID() changes between calls")
		}
	})
	t.Run("RoundTrip", func(t *testing.T) { testCompressRoundTrip(t, c) })
	t.Run("AppendsToDst", func(t *testing.T) { testCompressAppend(t, c) })
	t.Run("MaxSize", func(t *testing.T) { testCompressMaxSize(t, c) })
	t.Run("Bomb", func(t *testing.T) { testCompressBomb(t, c) })
	t.Run("Corrupt", func(t *testing.T) { testCompressCorrupt(t, c) })
	t.Run("Concurrent", func(t *testing.T) { testCompressConcurrent(t, c) })
}

// CompressiblePayload returns n bytes of deterministic JSON-like text,
// about as compressible as RPC bodies tend to be. Benchmarks use it too.
func CompressiblePayload(n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	words := []string{"id", "name", "kite", "user", "order", "status", "active", "price",
		"quantity", "zone", "eu-west-1", "true", "false", "null", "created_at", "2026-11-24T10:00:00Z"}
	var b bytes.Buffer
	b.Grow(n + 64)
	b.WriteString(`{"items":[`)
	for b.Len() < n {
		fmt.Fprintf(&b, `{"%s":"%s","%s":%d},`, words[rng.IntN(len(words))], words[rng.IntN(len(words))],
			words[rng.IntN(len(words))], rng.IntN(100000))
	}
	return b.Bytes()[:n]
}

// RandomPayload returns n bytes of deterministic incompressible data.
func RandomPayload(n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), 11))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

type payload struct {
	name string
	data []byte
}

func compressorPayloads() []payload {
	return []payload{
		{"0B", []byte{}},
		{"1B", []byte{'k'}},
		{"1KiB", CompressiblePayload(1 << 10)},
		{"64KiB", CompressiblePayload(64 << 10)},
		{"1MiB", CompressiblePayload(1 << 20)},
		{"64KiB-random", RandomPayload(64 << 10)},
		{"1MiB-random", RandomPayload(1 << 20)},
	}
}

func roundTrip(c spi.Compressor, data []byte) error {
	z, err := c.Compress(nil, data)
	if err != nil {
		return fmt.Errorf("Compress(%d bytes): %v", len(data), err)
	}
	out, err := c.Decompress(nil, z, len(data))
	if err != nil {
		return fmt.Errorf("Decompress(%d bytes, maxSize %d): %v", len(z), len(data), err)
	}
	if !bytes.Equal(out, data) {
		return fmt.Errorf("round trip of %d bytes returned %d different bytes", len(data), len(out))
	}
	return nil
}

func testCompressRoundTrip(t *testing.T, c spi.Compressor) {
	for _, p := range compressorPayloads() {
		if err := roundTrip(c, p.data); err != nil {
			t.Errorf("%s: %v", p.name, err)
		}
	}
	// Compressible data must actually shrink, or the compressor is a
	// copy with extra steps.
	text := CompressiblePayload(64 << 10)
	z, err := c.Compress(nil, text)
	if err != nil {
		t.Fatal(err)
	}
	if len(z) >= len(text)/2 {
		t.Errorf("64 KiB of repetitive text compressed only to %d bytes", len(z))
	}
}

func testCompressAppend(t *testing.T, c spi.Compressor) {
	prefix := []byte("kite-prefix\x00\xff")
	for _, p := range compressorPayloads()[:4] {
		roomy := func() []byte {
			b := make([]byte, len(prefix), len(prefix)+2*len(p.data)+1024)
			copy(b, prefix)
			return b
		}
		tight := func() []byte { b := bytes.Clone(prefix); return b[:len(b):len(b)] }
		for _, mk := range []func() []byte{roomy, tight} {
			dst := mk()
			z, err := c.Compress(dst, p.data)
			if err != nil {
				t.Fatalf("%s: Compress with dst: %v", p.name, err)
			}
			if !bytes.HasPrefix(z, prefix) || !bytes.Equal(dst, prefix) {
				t.Errorf("%s: Compress clobbered dst (cap %d)", p.name, cap(dst))
				continue
			}
			dst2 := mk()
			out, err := c.Decompress(dst2, z[len(prefix):], len(p.data))
			if err != nil {
				t.Errorf("%s: Decompress with dst (cap %d): %v", p.name, cap(dst2), err)
				continue
			}
			if !bytes.HasPrefix(out, prefix) || !bytes.Equal(dst2, prefix) {
				t.Errorf("%s: Decompress clobbered dst (cap %d)", p.name, cap(dst2))
				continue
			}
			if !bytes.Equal(out[len(prefix):], p.data) {
				t.Errorf("%s: Decompress with dst returned different data", p.name)
			}
		}
	}
}

func testCompressMaxSize(t *testing.T, c spi.Compressor) {
	for _, p := range compressorPayloads()[1:] {
		z, err := c.Compress(nil, p.data)
		if err != nil {
			t.Fatalf("%s: Compress: %v", p.name, err)
		}
		if _, err := c.Decompress(nil, z, len(p.data)); err != nil {
			t.Errorf("%s: Decompress with maxSize = exact size: %v", p.name, err)
		}
		out, err := c.Decompress([]byte("dst bytes do not count"), z, len(p.data))
		if err != nil || len(out) != len("dst bytes do not count")+len(p.data) {
			t.Errorf("%s: Decompress with a non-empty dst and maxSize = exact size: %d bytes, %v", p.name, len(out), err)
		}
		limits := []int{len(p.data) - 1}
		if len(p.data) > 1 {
			limits = append(limits, 0)
		}
		for _, limit := range limits {
			out, err := c.Decompress(nil, z, limit)
			if err == nil {
				t.Errorf("%s: Decompress with maxSize %d returned %d bytes and no error", p.name, limit, len(out))
			} else if spi.CodeOf(err) != spi.ResourceExhausted {
				t.Errorf("%s: Decompress over maxSize %d: want a ResourceExhausted error, got %v (%v)", p.name, limit, spi.CodeOf(err), err)
			}
		}
	}
}

func testCompressBomb(t *testing.T, c spi.Compressor) {
	const bombSize = 8 << 20
	z, err := c.Compress(nil, make([]byte, bombSize))
	if err != nil {
		t.Fatalf("Compress(8 MiB of zeros): %v", err)
	}
	try := func() error {
		_, err := c.Decompress(nil, z, 1<<10)
		return err
	}
	// Warm up pools and lazily built tables so that the measured call
	// counts only what decoding this input costs.
	if err := try(); err == nil {
		t.Fatal("Decompress of 8 MiB with maxSize 1 KiB returned no error")
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err = try()
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("Decompress of 8 MiB with maxSize 1 KiB returned no error")
	}
	if spi.CodeOf(err) != spi.ResourceExhausted {
		t.Errorf("want a ResourceExhausted error, got %v (%v)", spi.CodeOf(err), err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > bombSize/4 {
		t.Errorf("rejecting a %d-byte body (8 MiB decompressed) with maxSize 1 KiB allocated %d bytes: check the size before decoding",
			len(z), alloc)
	}
}

func testCompressCorrupt(t *testing.T, c spi.Compressor) {
	data := CompressiblePayload(4 << 10)
	z, err := c.Compress(nil, data)
	if err != nil {
		t.Fatal(err)
	}
	step := max(1, len(z)/64)
	for n := 1; n < len(z); n += step {
		out, err := decompressNoPanic(c, z[:n], len(data))
		if err == nil {
			t.Errorf("truncated to %d of %d bytes: Decompress returned %d bytes and no error", n, len(z), len(out))
		} else if _, panicked := err.(panicError); panicked {
			t.Errorf("truncated to %d of %d bytes: %v", n, len(z), err)
		}
	}
	const limit = 1 << 20
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(what string, in []byte) {
		out, err := decompressNoPanic(c, in, limit)
		if _, panicked := err.(panicError); panicked {
			t.Errorf("%s: %v", what, err)
		} else if err == nil && len(out) > limit {
			t.Errorf("%s: Decompress returned %d bytes, over maxSize %d", what, len(out), limit)
		}
	}
	for i := range 64 {
		b := bytes.Clone(z)
		b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
		check(fmt.Sprintf("bit flip %d", i), b)
	}
	for i := range 64 {
		b := make([]byte, 1+rng.IntN(256))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		check(fmt.Sprintf("random input %d", i), b)
	}
}

func decompressNoPanic(c spi.Compressor, src []byte, maxSize int) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError{p}
		}
	}()
	return c.Decompress(nil, src, maxSize)
}

func testCompressConcurrent(t *testing.T, c spi.Compressor) {
	const workers, rounds = 8, 12
	sizes := []int{0, 1, 128, 1 << 10, 16 << 10, 64 << 10}
	inputs := make([][]byte, len(sizes))
	for i, n := range sizes {
		inputs[i] = CompressiblePayload(n)
	}
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var zbuf, obuf []byte
			for r := range rounds {
				data := inputs[(w+r)%len(inputs)]
				var err error
				if zbuf, err = c.Compress(zbuf[:0], data); err != nil {
					errs <- fmt.Errorf("worker %d: Compress: %v", w, err)
					return
				}
				if obuf, err = c.Decompress(obuf[:0], zbuf, len(data)); err != nil {
					errs <- fmt.Errorf("worker %d: Decompress: %v", w, err)
					return
				}
				if !bytes.Equal(obuf, data) {
					errs <- fmt.Errorf("worker %d: round trip of %d bytes differs", w, len(data))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
