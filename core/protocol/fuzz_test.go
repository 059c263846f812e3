package protocol

import (
	"bytes"
	"testing"
	"time"

	"github.com/kiterpc/kite/spi"
)

// FuzzReadFrame feeds arbitrary bytes to the frame and metadata decoders.
// They must never panic, never allocate past the limits, and any frame
// they accept must re-encode to the same bytes.
func FuzzReadFrame(f *testing.F) {
	md := &spi.Metadata{}
	md.Set("k", "v")
	md.Set(spi.MetaAuthorization, "t")
	f.Add(buildFrame(TypeRequest, 1, func(b []byte) []byte {
		b = AppendMethod(b, "Echo.Say")
		b = AppendTimeout(b, time.Second)
		return AppendMD(b, md)
	}, []byte("body")))
	f.Add(buildFrame(TypeResponse, 2, func(b []byte) []byte {
		return AppendError(b, &spi.Error{Code: spi.Internal, Message: "x", Details: []byte{1}})
	}, nil))
	f.Add(AppendControl(nil, TypePing, 0, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	f.Add([]byte("KT\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxFrame, maxMeta = 1 << 16, 1 << 12
		r := NewReader(bytes.NewReader(data), 0, maxFrame, maxMeta)
		for {
			var fr Frame
			if err := r.ReadFrame(&fr); err != nil {
				return
			}
			if len(fr.Meta)+len(fr.Body) > maxFrame || len(fr.Meta) > maxMeta {
				t.Fatalf("frame beyond limits: %d+%d", len(fr.Meta), len(fr.Body))
			}
			m := Meta{MD: &spi.Metadata{}}
			if err := DecodeMeta(fr.Meta, &m); err == nil {
				// Re-encode what was understood and decode again: same values.
				var b []byte
				if m.Method != nil {
					b = AppendMethod(b, string(m.Method))
				}
				b = AppendMD(b, m.MD)
				m2 := Meta{MD: &spi.Metadata{}}
				if err := DecodeMeta(b, &m2); err != nil {
					t.Fatalf("re-encoded metadata does not decode: %v", err)
				}
				if string(m2.Method) != string(m.Method) || m2.MD.Len() != m.MD.Len() {
					t.Fatalf("metadata changed in round trip")
				}
			}
			fr.Release()
		}
	})
}
