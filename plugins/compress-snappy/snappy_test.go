package snappy_test

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"go.uber.org/goleak"

	snappy "github.com/kiterpc/kite/plugins/compress-snappy"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) { spitest.TestCompressor(t, snappy.New()) }

func TestRegistered(t *testing.T) {
	c, err := spi.Default.BuildCompressor("snappy", spi.Config(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "snappy" || c.ID() != spi.CompressSnappy {
		t.Errorf("built %s/%d, want snappy/%d", c.Name(), c.ID(), spi.CompressSnappy)
	}
	if _, err := spi.Default.BuildCompressor("snappy", spi.Config(`{"level":"best"}`)); err == nil {
		t.Error("an unknown setting was accepted")
	}
}

// TestLyingHeader feeds a block whose header claims far more output than
// its body can hold: it must be refused as corrupt without allocating
// the claimed size.
func TestLyingHeader(t *testing.T) {
	c := snappy.New()
	lie := []byte{0x80, 0x80, 0x80, 0x02, 0x00} // claims 4 MiB from 1 byte
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := c.Decompress(nil, lie, 8<<20)
	runtime.ReadMemStats(&after)
	if spi.CodeOf(err) != spi.DataLoss {
		t.Fatalf("want DataLoss, got %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Errorf("refusing a lying header allocated %d bytes", n)
	}
}

// TestWireCompatible checks the output is the plain snappy block format
// other snappy implementations read: a known encoding of a short input.
func TestWireCompatible(t *testing.T) {
	z, err := snappy.New().Compress(nil, []byte("kite"))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x04, 0x0c, 'k', 'i', 't', 'e'} // length 4, literal of 4
	if !bytes.Equal(z, want) {
		t.Errorf("got % x, want % x", z, want)
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	c := snappy.New()
	for _, n := range []int{128, 1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
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
