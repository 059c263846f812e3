package bridge

import (
	"reflect"
	"testing"

	hessiancodec "github.com/kiterpc/kite/plugins/codec-hessian"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// TestCodecHessian runs the codec suite on kite-codec-hessian through the
// bridge. Values cross as JSON, so the plugin encodes Go structs as
// Hessian maps (no Java class): the suite's json-tagged user survives,
// and bridged and compiled-in codecs read each other's maps.
func TestCodecHessian(t *testing.T) {
	e := load(t, "kite-codec-hessian", spi.KindCodec, hessiancodec.Name)
	bridged := build[spi.Codec](t, e, `{}`)
	t.Run("Conformance", func(t *testing.T) {
		spitest.TestCodec(t, bridged, func() any { return new(user) }, users()...)
	})
	t.Run("MeetsCompiledIn", func(t *testing.T) {
		local := compiled[spi.Codec](t, spi.KindCodec, hessiancodec.Name, `{}`)
		if bridged.ID() != local.ID() || bridged.Name() != local.Name() {
			t.Fatalf("bridged %s/%d, compiled in %s/%d", bridged.Name(), bridged.ID(), local.Name(), local.ID())
		}
		m := map[string]any{"id": int64(1001), "name": "ann", "tags": []any{"a", "b"}, "nested": map[string]any{"ok": true}, "none": nil}
		for _, dir := range []struct {
			name     string
			from, to spi.Codec
		}{{"bridged→compiled", bridged, local}, {"compiled→bridged", local, bridged}} {
			b, err := dir.from.Marshal(nil, m)
			if err != nil {
				t.Fatalf("%s: marshal: %v", dir.name, err)
			}
			var got map[string]any
			if err := dir.to.Unmarshal(b, &got); err != nil {
				t.Fatalf("%s: unmarshal: %v", dir.name, err)
			}
			if dir.to == bridged {
				// Back through JSON: numbers come home as float64.
				m2 := map[string]any{"id": 1001.0, "name": "ann", "tags": []any{"a", "b"}, "nested": map[string]any{"ok": true}, "none": nil}
				if !reflect.DeepEqual(got, m2) {
					t.Fatalf("%s: %#v came back as %#v", dir.name, m2, got)
				}
			} else if !reflect.DeepEqual(got, m) {
				t.Fatalf("%s: %#v came back as %#v", dir.name, m, got)
			}
		}
	})
	t.Run("BadInput", func(t *testing.T) {
		// A 7-byte list header claiming 2^31-1 elements: refused in the
		// plugin, which stays up.
		var v any
		err := bridged.Unmarshal([]byte{'X', 'I', 0x7f, 0xff, 0xff, 0xff, 'N'}, &v)
		if spi.CodeOf(err) != spi.InvalidArgument {
			t.Fatalf("huge declared length through the bridge: %v", err)
		}
		if _, err := bridged.Marshal(nil, map[string]any{"after": "still up"}); err != nil {
			t.Fatalf("the plugin did not survive: %v", err)
		}
	})
}
