package bridge

import (
	"bytes"
	"testing"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"

	_ "github.com/kiterpc/kite/plugins/compress-gzip"
	_ "github.com/kiterpc/kite/plugins/compress-s2"
	_ "github.com/kiterpc/kite/plugins/compress-snappy"
	_ "github.com/kiterpc/kite/plugins/compress-zstd"
)

func TestCompressors(t *testing.T) {
	for _, name := range []string{"snappy", "s2", "zstd", "gzip"} {
		t.Run(name, func(t *testing.T) {
			e := load(t, "kite-compressor-"+name, spi.KindCompressor, name)
			bridged := build[spi.Compressor](t, e, `{}`)
			t.Run("Conformance", func(t *testing.T) { spitest.TestCompressor(t, bridged) })
			t.Run("MeetsCompiledIn", func(t *testing.T) {
				local := compiled[spi.Compressor](t, spi.KindCompressor, name, `{}`)
				if bridged.ID() != local.ID() || bridged.Name() != local.Name() {
					t.Fatalf("bridged %s/%d, compiled in %s/%d", bridged.Name(), bridged.ID(), local.Name(), local.ID())
				}
				// A frame compressed by one mode is read by the other.
				for _, data := range [][]byte{spitest.CompressiblePayload(64 << 10), spitest.RandomPayload(3000), {}} {
					for _, dir := range []struct {
						name     string
						from, to spi.Compressor
					}{{"bridged→compiled", bridged, local}, {"compiled→bridged", local, bridged}} {
						z, err := dir.from.Compress(nil, data)
						if err != nil {
							t.Fatalf("%s: compress: %v", dir.name, err)
						}
						out, err := dir.to.Decompress(nil, z, len(data)+1)
						if err != nil || !bytes.Equal(out, data) {
							t.Fatalf("%s: %d bytes came back as %d (%v)", dir.name, len(data), len(out), err)
						}
					}
				}
			})
		})
	}
}
