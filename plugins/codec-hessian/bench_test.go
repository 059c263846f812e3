package hessiancodec_test

import (
	"testing"
	"time"

	hessiancodec "github.com/kiterpc/kite/plugins/codec-hessian"
	jsoncodec "github.com/kiterpc/kite/plugins/codec-json"
	"github.com/kiterpc/kite/spi"
)

// BenchmarkRoundTrip encodes and decodes a User (an object with a nested
// object, list, map, binary and date) with this codec and, as a peer in
// the same run, the JSON codec.
func BenchmarkRoundTrip(b *testing.B) {
	u := &User{Name: "Ada Lovelace", Age: 36, ID: 1 << 40, Score: 97.25, Active: true, Tags: []string{"admin", "beta"},
		Attrs: map[string]string{"zone": "eu-west-1"}, Avatar: []byte{1, 2, 3, 4}, Friend: &User{Name: "Charles", Age: 79},
		Created: time.UnixMilli(1764849600123)}
	for _, c := range []spi.Codec{hessiancodec.New(), jsoncodec.New()} {
		b.Run(c.Name(), func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				var err error
				buf, err = c.Marshal(buf[:0], u)
				if err != nil {
					b.Fatal(err)
				}
				var out User
				if err := c.Unmarshal(buf, &out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(buf)), "bytes")
		})
	}
}
