package s2_test

import (
	"testing"

	s2 "github.com/kiterpc/kite/plugins/compress-s2"
	"github.com/kiterpc/kite/spi/spitest"
)

// FuzzDecompress runs the shared compressor fuzz contract
// (spitest.FuzzCompressor) with seeds specific to this format.
func FuzzDecompress(f *testing.F) {
	c := s2.New()

	best, err := s2.NewWithConfig(s2.Config{Level: s2.LevelBest})
	if err != nil {
		f.Fatal(err)
	}
	z, err := best.Compress(nil, spitest.CompressiblePayload(8<<10))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(z, uint16(8<<10))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, uint16(100))               // claims 4 GiB
	f.Add([]byte{0xe8, 0x07, 0x00, 'a'}, uint16(2000))                     // claims 1000 bytes from 4
	f.Add([]byte{0x0a, 0x08, 'a', 'b', 'c', 0x0a, 0x0c, 0x03}, uint16(64)) // literal, then copies
	f.Add([]byte{0x05, 0x01, 0x00}, uint16(64))                            // copy before any literal
	spitest.FuzzCompressor(f, c)
}
