package s2_test

import (
	"fmt"
	"testing"

	gosnappy "github.com/golang/snappy"
	"go.uber.org/goleak"

	s2 "github.com/kiterpc/kite/plugins/compress-s2"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	for _, level := range []string{s2.LevelDefault, s2.LevelBetter, s2.LevelBest} {
		t.Run(level, func(t *testing.T) {
			c, err := s2.NewWithConfig(s2.Config{Level: level})
			if err != nil {
				t.Fatal(err)
			}
			spitest.TestCompressor(t, c)
		})
	}
}

func TestRegistered(t *testing.T) {
	c, err := spi.Default.BuildCompressor("s2", spi.Config(`{"level":"better"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "s2" || c.ID() != spi.CompressS2 || c.(*s2.Compressor).Level() != "better" {
		t.Errorf("built %s/%d, want s2/%d at level better", c.Name(), c.ID(), spi.CompressS2)
	}
	for _, bad := range []string{`{"level":"max"}`, `{"lvl":"best"}`} {
		if _, err := spi.Default.BuildCompressor("s2", spi.Config(bad)); err == nil {
			t.Errorf("config %s was accepted", bad)
		}
	}
}

// TestReadsSnappy checks the S2 decoder takes snappy blocks, so a peer
// may switch from snappy to s2 without a flag day on the decoding side.
func TestReadsSnappy(t *testing.T) {
	data := spitest.CompressiblePayload(8 << 10)
	out, err := s2.New().Decompress(nil, gosnappy.Encode(nil, data), len(data))
	if err != nil || string(out) != string(data) {
		t.Fatalf("decoding a snappy block: %v", err)
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	for _, level := range []string{s2.LevelDefault, s2.LevelBetter, s2.LevelBest} {
		c, _ := s2.NewWithConfig(s2.Config{Level: level})
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
