package gzip_test

import (
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"

	gzip "github.com/kiterpc/kite/plugins/compress-gzip"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var levels = []gzip.Level{gzip.LevelFastest, gzip.LevelDefault, gzip.LevelBest, "6"}

func TestConformance(t *testing.T) { spitest.TestCompressor(t, gzip.New()) }

// TestLevels round-trips empty, small, large and incompressible bodies at
// every level, into an empty and into a non-empty dst.
func TestLevels(t *testing.T) {
	for _, level := range levels {
		c, err := gzip.NewWithConfig(gzip.Config{Level: level})
		if err != nil {
			t.Fatal(err)
		}
		for _, data := range [][]byte{{}, {'k'}, []byte("hello, kite"), spitest.CompressiblePayload(1 << 20), spitest.RandomPayload(256 << 10)} {
			z, err := c.Compress([]byte("z-prefix"), data)
			if err != nil || string(z[:8]) != "z-prefix" {
				t.Fatalf("%s: Compress: %q..., %v", level, z[:min(8, len(z))], err)
			}
			out, err := c.Decompress([]byte("o-prefix"), z[8:], len(data))
			if err != nil || string(out[:8]) != "o-prefix" || !bytes.Equal(out[8:], data) {
				t.Fatalf("%s: round trip of %d bytes: %d bytes, %v", level, len(data), len(out), err)
			}
		}
	}
}

func TestRegistered(t *testing.T) {
	c, err := spi.Default.BuildCompressor("gzip", spi.Config(`{"level":"fastest"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "gzip" || c.ID() != spi.CompressGzip || spi.CompressGzip != 4 || c.(*gzip.Compressor).Level() != "fastest" {
		t.Errorf("built %s/%d, want gzip/4 at level fastest", c.Name(), c.ID())
	}
	if _, ok := c.(spi.DecodedSizer); ok {
		t.Error("gzip implements spi.DecodedSizer: its size trailer is not to be trusted")
	}
	for cfg, want := range map[string]gzip.Level{`{}`: "default", `{"level":1}`: "1", `{"level":"9"}`: "9", `{"level":"best"}`: "best"} {
		c, err := spi.Default.BuildCompressor("gzip", spi.Config(cfg))
		if err != nil {
			t.Errorf("%s: %v", cfg, err)
			continue
		}
		if got := c.(*gzip.Compressor).Level(); got != want {
			t.Errorf("%s: level %q, want %q", cfg, got, want)
		}
	}
	for _, bad := range []string{`{"level":"ultra"}`, `{"level":0}`, `{"level":10}`, `{"level":-1}`, `{"level":true}`, `{"window":"32KiB"}`} {
		if _, err := spi.Default.BuildCompressor("gzip", spi.Config(bad)); err == nil {
			t.Errorf("config %s was accepted", bad)
		}
	}
}

// TestBomb: 64 MiB of zeros gzip to about 64 KiB; with a limit of 64 KiB
// Decompress must fail having allocated about the limit, not the 64 MiB.
func TestBomb(t *testing.T) {
	const inflated, limit = 64 << 20, 64 << 10
	c := gzip.New()
	bomb, err := c.Compress(nil, make([]byte, inflated))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decompress(nil, bomb, limit); spi.CodeOf(err) != spi.ResourceExhausted {
		t.Fatalf("want ResourceExhausted, got %v", err) // also warms the reader pool
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const runs = 10
	for range runs {
		if _, err := c.Decompress(nil, bomb, limit); spi.CodeOf(err) != spi.ResourceExhausted {
			t.Fatalf("want ResourceExhausted, got %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	perCall := (after.TotalAlloc - before.TotalAlloc) / runs
	t.Logf("%d-byte body inflating to %d bytes, limit %d: %d bytes allocated per failing call, %.1f allocs",
		len(bomb), inflated, limit, perCall, float64(after.Mallocs-before.Mallocs)/runs)
	// The output buffer grows to at most limit+1 bytes, geometrically:
	// a few times the limit in all, nothing like the inflated size.
	if perCall > 4*limit && !raceEnabled {
		t.Errorf("rejecting the bomb allocated %d bytes per call, want at most %d", perCall, 4*limit)
	}
	// A lying size trailer asks for more than the body can hold: it is
	// only a hint, capped by deflate's ratio and the limit.
	small, _ := c.Compress(nil, []byte("tiny"))
	copy(small[len(small)-4:], []byte{0xff, 0xff, 0xff, 0x7f})
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := c.Decompress(nil, small, 1<<30); spi.CodeOf(err) != spi.DataLoss {
			t.Fatalf("lying trailer: want DataLoss, got %v", err)
		}
	})
	runtime.ReadMemStats(&before)
	_, _ = c.Decompress(nil, small, 1<<30)
	runtime.ReadMemStats(&after)
	t.Logf("lying trailer (2 GiB claimed, limit 1 GiB): %.0f allocs, %d bytes", allocs, after.TotalAlloc-before.TotalAlloc)
	// The hint is capped at 1032 x 29 bytes (one 32 KiB size class).
	if got := after.TotalAlloc - before.TotalAlloc; got > 40<<10 && !raceEnabled {
		t.Errorf("a %d-byte body claiming 2 GiB allocated %d bytes", len(small), got)
	}
}

// TestNoAllocsWarm: with pooled readers and writers and a dst with room,
// a round trip allocates nothing.
func TestNoAllocsWarm(t *testing.T) {
	c := gzip.New()
	data := spitest.CompressiblePayload(16 << 10)
	z, _ := c.Compress(nil, data)
	zbuf, obuf := make([]byte, 0, 2*len(data)), make([]byte, 0, len(data))
	allocs := testing.AllocsPerRun(50, func() {
		var err error
		if zbuf, err = c.Compress(zbuf[:0], data); err != nil {
			t.Fatal(err)
		}
		if obuf, err = c.Decompress(obuf[:0], z, len(data)); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("warm round trip of 16 KiB: %.1f allocs", allocs)
	if allocs > 1 && !raceEnabled { // the pool may drop an entry under GC
		t.Errorf("warm round trip allocated %.1f times", allocs)
	}
}

func TestCorrupt(t *testing.T) {
	c := gzip.New()
	data := spitest.CompressiblePayload(8 << 10)
	z, _ := c.Compress(nil, data)
	flip := func(i int) []byte { b := bytes.Clone(z); b[i] ^= 0x01; return b }
	for name, in := range map[string][]byte{
		"truncated header":  z[:5],
		"truncated data":    z[:len(z)/2],
		"truncated trailer": z[:len(z)-1],
		"bad magic":         flip(0),
		"bad method":        flip(2),
		"bad CRC":           flip(len(z) - 8),
		"bad size":          flip(len(z) - 4),
		"garbage":           []byte("this is not gzip at all"),
		"trailing garbage":  append(bytes.Clone(z), "junk"...),
	} {
		out, err := c.Decompress([]byte("pre"), in, len(data))
		if spi.CodeOf(err) != spi.DataLoss || string(out) != "pre" {
			t.Errorf("%s: got %d bytes, %v; want dst unchanged and DataLoss", name, len(out), err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestMultiMember: concatenated members decode to the concatenation of
// their contents, the limit applying to the total.
func TestMultiMember(t *testing.T) {
	c := gzip.New()
	a, b := spitest.CompressiblePayload(10<<10), spitest.RandomPayload(20<<10)
	z, _ := c.Compress(nil, a)
	z, _ = c.Compress(z, b)
	z, _ = c.Compress(z, nil)
	want := append(bytes.Clone(a), b...)
	out, err := c.Decompress(nil, z, len(want))
	if err != nil || !bytes.Equal(out, want) {
		t.Fatalf("three members: %d bytes, %v", len(out), err)
	}
	if _, err := c.Decompress(nil, z, len(want)-1); spi.CodeOf(err) != spi.ResourceExhausted {
		t.Fatalf("three members over maxSize: want ResourceExhausted, got %v", err)
	}
	// The standard library reads them the same way.
	r, err := stdgzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("compress/gzip on three members: %d bytes, %v", len(got), err)
	}
}

// TestStdlibInterop: what compress/gzip writes (at any level, with header
// fields) this plugin reads, and what this plugin writes compress/gzip
// reads.
func TestStdlibInterop(t *testing.T) {
	c := gzip.New()
	for _, data := range [][]byte{{}, []byte("k"), spitest.CompressiblePayload(300 << 10), spitest.RandomPayload(70 << 10)} {
		for _, level := range []int{stdgzip.NoCompression, stdgzip.BestSpeed, stdgzip.DefaultCompression, stdgzip.BestCompression, stdgzip.HuffmanOnly} {
			var buf bytes.Buffer
			w, _ := stdgzip.NewWriterLevel(&buf, level)
			w.Name, w.Comment, w.Extra = "x.json", "written by compress/gzip", []byte("KT\x01\x00z")
			_, _ = w.Write(data)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			out, err := c.Decompress(nil, buf.Bytes(), len(data))
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("stdlib level %d, %d bytes: got %d bytes, %v", level, len(data), len(out), err)
			}
		}
		for _, l := range levels {
			pc, _ := gzip.NewWithConfig(gzip.Config{Level: l})
			z, _ := pc.Compress(nil, data)
			r, err := stdgzip.NewReader(bytes.NewReader(z))
			if err != nil {
				t.Fatalf("%s: compress/gzip rejects the header: %v", l, err)
			}
			r.Multistream(false)
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: compress/gzip read %d of %d bytes: %v", l, len(got), len(data), err)
			}
			if _, err := r.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("%s: one member expected", l)
			}
		}
	}
}

func TestConcurrent(t *testing.T) {
	c := gzip.New()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			var z, out []byte
			for r := range 50 {
				data := spitest.CompressiblePayload(1 + (w*50+r)*97%40000)
				var err error
				if z, err = c.Compress(z[:0], data); err != nil {
					t.Error(err)
					return
				}
				if out, err = c.Decompress(out[:0], z, len(data)); err != nil || !bytes.Equal(out, data) {
					t.Errorf("worker %d: round trip of %d bytes: %v", w, len(data), err)
					return
				}
				if _, err = c.Decompress(nil, z, len(data)-1); spi.CodeOf(err) != spi.ResourceExhausted {
					t.Errorf("worker %d: over the limit: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkRoundTrip(b *testing.B) {
	for _, level := range []gzip.Level{gzip.LevelFastest, gzip.LevelDefault, gzip.LevelBest} {
		c, _ := gzip.NewWithConfig(gzip.Config{Level: level})
		for _, n := range []int{128, 1 << 10, 64 << 10} {
			b.Run(fmt.Sprintf("%s/%dB", level, n), func(b *testing.B) {
				data := spitest.CompressiblePayload(n)
				var z, out []byte
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if z, err = c.Compress(z[:0], data); err != nil {
						b.Fatal(err)
					}
					if out, err = c.Decompress(out[:0], z, n); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)/float64(len(z)), "ratio")
			})
		}
	}
}
