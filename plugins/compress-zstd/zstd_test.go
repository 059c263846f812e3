package zstd_test

import (
	"bytes"
	"fmt"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"
	"go.uber.org/goleak"

	zstd "github.com/kiterpc/kite/plugins/compress-zstd"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var levels = []zstd.Level{zstd.LevelFastest, zstd.LevelDefault, zstd.LevelBetter, zstd.LevelBest}

func TestConformance(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		c := zstd.New()
		defer c.Close()
		spitest.TestCompressor(t, c)
	})
	t.Run("no-checksum", func(t *testing.T) {
		off := false
		c, err := zstd.NewWithConfig(zstd.Config{Checksum: &off})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		spitest.TestCompressor(t, c)
	})
}

// TestLevels round-trips bodies at every level. The levels differ only
// in the encoder's search effort, so the full suite (which takes seconds
// per level under -race) runs once, on the default.
func TestLevels(t *testing.T) {
	for _, level := range levels {
		c, err := zstd.NewWithConfig(zstd.Config{Level: level})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, data := range [][]byte{{}, {'k'}, spitest.CompressiblePayload(64 << 10), spitest.RandomPayload(64 << 10)} {
			z, err := c.Compress(nil, data)
			if err != nil {
				t.Fatalf("%s: Compress: %v", level, err)
			}
			out, err := c.Decompress(nil, z, len(data))
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("%s: round trip of %d bytes: %d bytes, %v", level, len(data), len(out), err)
			}
		}
	}
}

func TestRegistered(t *testing.T) {
	c, err := spi.Default.BuildCompressor("zstd", spi.Config(`{"level":"fastest","checksum":false}`))
	if err != nil {
		t.Fatal(err)
	}
	defer c.(spi.Closer).Close()
	if c.Name() != "zstd" || c.ID() != spi.CompressZstd || c.(*zstd.Compressor).Level() != "fastest" {
		t.Errorf("built %s/%d, want zstd/%d at level fastest", c.Name(), c.ID(), spi.CompressZstd)
	}
	for cfg, want := range map[string]zstd.Level{`{"level":3}`: "3", `{"level":"19"}`: "19", `{"level":"best"}`: "best"} {
		c, err := spi.Default.BuildCompressor("zstd", spi.Config(cfg))
		if err != nil {
			t.Errorf("%s: %v", cfg, err)
			continue
		}
		if got := c.(*zstd.Compressor).Level(); got != want {
			t.Errorf("%s: level %q, want %q", cfg, got, want)
		}
		c.(spi.Closer).Close()
	}
	for _, bad := range []string{`{"level":"ultra"}`, `{"level":0}`, `{"level":23}`, `{"level":true}`, `{"window":"8MiB"}`} {
		if _, err := spi.Default.BuildCompressor("zstd", spi.Config(bad)); err == nil {
			t.Errorf("config %s was accepted", bad)
		}
	}
}

// streamed compresses data the way a streaming zstd writer does: the
// frame header does not state the decoded size.
func streamed(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	w, err := kzstd.NewWriter(&buf, kzstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var h kzstd.Header
	if err := h.Decode(buf.Bytes()); err != nil || h.HasFCS {
		t.Fatalf("want a frame without content size, got %+v, %v", h, err)
	}
	return buf.Bytes()
}

// TestFrameWithoutSize covers frames from streaming encoders: no size in
// the header, so the limit is enforced while decoding.
func TestFrameWithoutSize(t *testing.T) {
	c := zstd.New()
	defer c.Close()
	data := spitest.CompressiblePayload(300 << 10)
	z := streamed(t, data)
	out, err := c.Decompress([]byte("pre"), z, len(data))
	if err != nil || !bytes.Equal(out[3:], data) || string(out[:3]) != "pre" {
		t.Fatalf("Decompress of a streamed frame: %d bytes, %v", len(out), err)
	}
	_, err = c.Decompress(nil, z, len(data)-1)
	if spi.CodeOf(err) != spi.ResourceExhausted {
		t.Fatalf("one byte over maxSize: want ResourceExhausted, got %v", err)
	}
	// A streamed bomb: 8 MiB of zeros, limit 64 KiB. The decoder's window
	// is memory it may use; the output must stop at the limit.
	bomb := streamed(t, make([]byte, 8<<20))
	_, err = c.Decompress(nil, bomb, 64<<10)
	if spi.CodeOf(err) != spi.ResourceExhausted {
		t.Fatalf("streamed bomb: want ResourceExhausted, got %v", err)
	}
	for n := 1; n < len(z); n += len(z)/16 + 1 {
		if _, err := c.Decompress(nil, z[:n], len(data)); err == nil {
			t.Errorf("streamed frame truncated to %d of %d bytes decoded without error", n, len(z))
		}
	}
}

// TestConcatenatedFrames covers input holding more than one frame, each
// stating its size: valid zstd, decoded whole, limit on the total.
func TestConcatenatedFrames(t *testing.T) {
	c := zstd.New()
	defer c.Close()
	a, b := spitest.CompressiblePayload(10<<10), spitest.CompressiblePayload(20<<10)
	z, _ := c.Compress(nil, a)
	z, _ = c.Compress(z, b)
	out, err := c.Decompress(nil, z, len(a)+len(b))
	if err != nil || !bytes.Equal(out, append(bytes.Clone(a), b...)) {
		t.Fatalf("two frames: %d bytes, %v", len(out), err)
	}
	if _, err := c.Decompress(nil, z, len(a)+len(b)-1); spi.CodeOf(err) != spi.ResourceExhausted {
		t.Fatalf("two frames over maxSize: want ResourceExhausted, got %v", err)
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	for _, level := range levels {
		c, _ := zstd.NewWithConfig(zstd.Config{Level: level})
		b.Cleanup(func() { c.Close() })
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
