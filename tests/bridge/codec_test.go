package bridge

import (
	"reflect"
	"testing"

	jsoncodec "github.com/kiterpc/kite/plugins/codec-json"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// user is a typical request body: the json codec's canonical form is its
// encoding/json form, which crosses the bridge as is.
type user struct {
	ID    int64             `json:"id"`
	Name  string            `json:"name"`
	Score float64           `json:"score"`
	Tags  []string          `json:"tags"`
	Attrs map[string]string `json:"attrs"`
	OK    bool              `json:"ok"`
	Raw   []byte            `json:"raw,omitempty"`
}

func users() []any {
	return []any{
		user{ID: 1001, Name: "ann", Score: 1.5, Tags: []string{"a", "b"}, Attrs: map[string]string{"k": "v"}, OK: true, Raw: []byte{0, 1, 0xff}},
		&user{ID: -1 << 40, Name: "日本 <&> \u2028", Tags: []string{}, Attrs: map[string]string{}},
		user{ID: 1<<53 - 1, Score: -0.25},
	}
}

func TestCodecJSON(t *testing.T) {
	e := load(t, "kite-codec-json", spi.KindCodec, jsoncodec.Name)
	bridged := build[spi.Codec](t, e, `{}`)
	t.Run("Conformance", func(t *testing.T) {
		spitest.TestCodec(t, bridged, func() any { return new(user) }, users()...)
	})
	t.Run("MeetsCompiledIn", func(t *testing.T) {
		local := compiled[spi.Codec](t, spi.KindCodec, jsoncodec.Name, `{}`)
		if bridged.ID() != local.ID() || bridged.Name() != local.Name() {
			t.Fatalf("bridged %s/%d, compiled in %s/%d", bridged.Name(), bridged.ID(), local.Name(), local.ID())
		}
		for _, u := range users() {
			for _, dir := range []struct {
				name     string
				from, to spi.Codec
			}{{"bridged→compiled", bridged, local}, {"compiled→bridged", local, bridged}} {
				b, err := dir.from.Marshal(nil, u)
				if err != nil {
					t.Fatalf("%s: marshal: %v", dir.name, err)
				}
				var got user
				if err := dir.to.Unmarshal(b, &got); err != nil {
					t.Fatalf("%s: unmarshal %s: %v", dir.name, b, err)
				}
				want := reflect.Indirect(reflect.ValueOf(u)).Interface().(user)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: %+v came back as %+v", dir.name, want, got)
				}
			}
		}
	})
}
