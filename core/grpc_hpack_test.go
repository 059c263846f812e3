package core

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// TestHPACKCachedBlocksDecode replays the writer's header blocks through
// a real HPACK decoder: the cached response headers and OK trailers must
// decode to the same fields as the encoder's own output, whatever other
// fields (call metadata, error trailers) and table size changes come
// between them.
func TestHPACKCachedBlocksDecode(t *testing.T) {
	var w h2writer
	w.henc = hpack.NewEncoder(&w.hbuf)
	var got []hpack.HeaderField
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) { got = append(got, f) })
	rng := rand.New(rand.NewPCG(1, 2))
	cached := 0
	for i := range 5000 {
		var fields []hpack.HeaderField
		switch r := rng.IntN(10); {
		case r < 4:
			fields = grpcRespHeaders
		case r < 8:
			fields = grpcOKTrailers
		case r < 9:
			fields = []hpack.HeaderField{
				{Name: "grpc-status", Value: "5"},
				{Name: fmt.Sprintf("x-md-%d", rng.IntN(50)), Value: fmt.Sprint(rng.IntN(1000))},
			}
		default:
			// The peer lowers the table size in the second half (the
			// encoder never grows it back: 0 ends indexing for good).
			if i > 2500 {
				w.setTableLimit([]uint32{0, 64, 256, 2048}[rng.IntN(4)])
			}
			continue
		}
		before := w.hgen
		blk, err := w.encode(fields)
		if err != nil {
			t.Fatal(err)
		}
		if allIndexed(blk, len(fields)) && w.hgen == before && (sameFields(fields, grpcRespHeaders) || sameFields(fields, grpcOKTrailers)) {
			cached++
		}
		got = got[:0]
		if _, err := dec.Write(blk); err != nil {
			t.Fatalf("block %d (%v): %v", i, fields, err)
		}
		if err := dec.Close(); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if len(got) != len(fields) {
			t.Fatalf("block %d: decoded %v, want %v", i, got, fields)
		}
		for j := range got {
			if got[j].Name != fields[j].Name || got[j].Value != fields[j].Value {
				t.Fatalf("block %d: decoded %v, want %v", i, got, fields)
			}
		}
	}
	if cached < 1000 {
		t.Fatalf("only %d of 5000 blocks were indexed-only: the cache is hardly used", cached)
	}
}
