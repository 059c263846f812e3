package bridge

import (
	"reflect"
	"testing"

	hessiancodec "github.com/kiterpc/kite/plugins/codec-hessian"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// javaPerson is how a host names a Java class for a bridged Hessian codec:
// a "_class" member in its JSON form.
type javaPerson struct {
	Class string `json:"_class"`
	Name  string `json:"name"`
	Age   int32  `json:"age"`
}

// boundPerson is the compiled-in codec's Go type for the same class.
type boundPerson struct {
	_    struct{} `java:"kite.bridge.Person"`
	Name string   `hessian:"name"`
	Age  int32    `hessian:"age"`
}

// TestCodecHessian runs the codec suite on kite-codec-hessian through the
// bridge. Values cross as JSON, so the plugin encodes Go structs as
// Hessian maps unless their JSON names a class under "_class": the
// suite's json-tagged user survives, bridged and compiled-in codecs read
// each other's maps and objects.
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
	t.Run("JavaObjects", func(t *testing.T) {
		// A host value whose JSON form names its class under "_class"
		// travels as a Java object through the bridge: the compiled-in
		// codec decodes it into the Go type bound to that class, and back.
		local := compiled[spi.Codec](t, spi.KindCodec, hessiancodec.Name, `{}`)
		b, err := bridged.Marshal(nil, javaPerson{Class: "kite.bridge.Person", Name: "ada", Age: 36})
		if err != nil {
			t.Fatal(err)
		}
		var p boundPerson
		if err := local.Unmarshal(b, &p); err != nil || p.Name != "ada" || p.Age != 36 {
			t.Fatalf("bridged object into the bound type: %+v, %v", p, err)
		}
		b, err = local.Marshal(nil, &boundPerson{Name: "bob", Age: 7})
		if err != nil {
			t.Fatal(err)
		}
		var j javaPerson
		if err := bridged.Unmarshal(b, &j); err != nil || j != (javaPerson{Class: "kite.bridge.Person", Name: "bob", Age: 7}) {
			t.Fatalf("bound object through the bridge: %+v, %v", j, err)
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
