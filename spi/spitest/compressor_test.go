package spitest_test

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// refCompressor is a minimal correct compressor: DEFLATE behind a uvarint
// of the decompressed length, checked against maxSize before anything is
// allocated. Its fault field breaks it in one way each.
type refCompressor struct{ fault string }

func (refCompressor) Name() string { return "ref-flate" }
func (refCompressor) ID() uint8    { return 201 }

func (c refCompressor) Compress(dst, src []byte) ([]byte, error) {
	if c.fault == "clobber" {
		dst = dst[:0]
	}
	dst = binary.AppendUvarint(dst, uint64(len(src)))
	buf := bytes.NewBuffer(dst)
	w, err := flate.NewWriter(buf, flate.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(src); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (c refCompressor) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 {
		return dst, spi.Errorf(spi.DataLoss, "ref-flate: bad length header")
	}
	if n > uint64(maxSize) && c.fault != "nolimit" && c.fault != "late" {
		return dst, spi.Errorf(spi.ResourceExhausted, "ref-flate: %d bytes exceed maxSize %d", n, maxSize)
	}
	out := make([]byte, n)
	r := flate.NewReader(bytes.NewReader(src[k:]))
	defer r.Close()
	if _, err := io.ReadFull(r, out); err != nil {
		return dst, spi.WrapError(spi.DataLoss, err, "ref-flate: corrupt body")
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		return dst, spi.Errorf(spi.DataLoss, "ref-flate: body does not end where its header says")
	}
	if c.fault == "late" && len(out) > maxSize { // checks only after allocating
		return dst, spi.Errorf(spi.ResourceExhausted, "ref-flate: too large")
	}
	return append(dst, out...), nil
}

func TestCompressorReference(t *testing.T) { spitest.TestCompressor(t, refCompressor{}) }

func TestCompressorSuiteCatchesFaults(t *testing.T) {
	if fault := os.Getenv("KITE_SPITEST_COMPRESSOR_FAULT"); fault != "" {
		spitest.TestCompressor(t, refCompressor{fault: fault})
		return
	}
	if testing.Short() {
		t.Skip("spawns child test processes")
	}
	for fault, c := range map[string]struct{ subtest, want string }{
		"clobber": {"AppendsToDst", "Compress clobbered dst"},
		"nolimit": {"MaxSize", "maxSize 65535 returned 65536 bytes and no error"},
		"late":    {"Bomb", "check the size before decoding"},
	} {
		t.Run(fault, func(t *testing.T) {
			out := runChild(t, "TestCompressorSuiteCatchesFaults/"+c.subtest, "KITE_SPITEST_COMPRESSOR_FAULT="+fault)
			want := c.want
			if !strings.Contains(out, want) {
				t.Errorf("suite output for fault %q lacks %q:\n%s", fault, want, out)
			}
		})
	}
}

func ExampleTestCompressor() {
	// In a compressor plugin's tests:
	//
	//	func TestConformance(t *testing.T) {
	//		spitest.TestCompressor(t, snappy.New())
	//	}
	fmt.Println(len(spitest.CompressiblePayload(1024)), len(spitest.RandomPayload(1024)))
	// Output: 1024 1024
}
