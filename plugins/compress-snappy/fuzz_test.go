package snappy_test

import (
	"testing"

	snappy "github.com/kiterpc/kite/plugins/compress-snappy"
	"github.com/kiterpc/kite/spi/spitest"
)

// FuzzDecompress runs the shared compressor fuzz contract
// (spitest.FuzzCompressor) with seeds specific to this format.
func FuzzDecompress(f *testing.F) {
	c := snappy.New()

	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, uint16(100))               // claims 4 GiB
	f.Add([]byte{0xe8, 0x07, 0x00, 'a'}, uint16(2000))                     // claims 1000 bytes from 4
	f.Add([]byte{0x0a, 0x08, 'a', 'b', 'c', 0x0a, 0x0c, 0x03}, uint16(64)) // literal, then copies
	f.Add([]byte{0x05, 0x01, 0x00}, uint16(64))                            // copy before any literal
	spitest.FuzzCompressor(f, c)
}
