package bridge

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	jsoncodec "github.com/kiterpc/kite/plugins/codec-json"
	protocodec "github.com/kiterpc/kite/plugins/codec-proto"
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

// protoSamples are messages linked into both this test and the stock
// kite-codec-proto: well-known types and a descriptor, which has nested
// and repeated messages, enums, proto2 optional fields and strings.
func protoSamples(t *testing.T) []any {
	st, err := structpb.NewStruct(map[string]any{"user": "ada", "id": 1001.0, "tags": []any{"a", true, nil}, "nested": map[string]any{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	// The first three run the codec suite (descriptor.proto's own
	// descriptor is too big for a suite that flips each of its bits); all
	// cross between the modes.
	return []any{
		protodesc.ToFileDescriptorProto(structpb.File_google_protobuf_struct_proto),
		st,
		timestamppb.New(time.Date(2026, 11, 25, 16, 0, 0, 123456789, time.UTC)),
		protodesc.ToFileDescriptorProto(descriptorpb.File_google_protobuf_descriptor_proto),
		wrapperspb.String("kite <&> 日本"),
		durationpb.New(-1500 * time.Millisecond),
		&descriptorpb.FieldOptions{},
	}
}

func TestCodecProto(t *testing.T) {
	e := load(t, "kite-codec-proto", spi.KindCodec, protocodec.Name)
	equal := func(want, got any) bool { return proto.Equal(want.(proto.Message), got.(proto.Message)) }
	for _, cfg := range []string{`{}`, `{"deterministic":true,"discard_unknown":true}`} {
		t.Run(cfg, func(t *testing.T) {
			bridged := build[spi.Codec](t, e, cfg)
			local := compiled[spi.Codec](t, spi.KindCodec, protocodec.Name, cfg)
			t.Run("Conformance", func(t *testing.T) {
				if cfg != `{}` {
					t.Skip("the suite runs once, on the default configuration (each bridged call is a round trip)")
				}
				for _, s := range protoSamples(t)[:3] {
					m := s.(proto.Message)
					t.Run(string(m.ProtoReflect().Descriptor().Name()), func(t *testing.T) {
						spitest.CodecSuite{
							Codec: bridged, Samples: []any{s}, Equal: equal,
							New: func() any { return m.ProtoReflect().Type().New().Interface() },
						}.Run(t)
					})
				}
			})
			t.Run("MeetsCompiledIn", func(t *testing.T) {
				if bridged.ID() != local.ID() || bridged.Name() != local.Name() {
					t.Fatalf("bridged %s/%d, compiled in %s/%d", bridged.Name(), bridged.ID(), local.Name(), local.ID())
				}
				for _, s := range protoSamples(t) {
					m := s.(proto.Message)
					for _, dir := range []struct {
						name     string
						from, to spi.Codec
					}{{"bridged→compiled", bridged, local}, {"compiled→bridged", local, bridged}} {
						b, err := dir.from.Marshal(nil, m)
						if err != nil {
							t.Fatalf("%s: marshal %T: %v", dir.name, m, err)
						}
						got := m.ProtoReflect().Type().New().Interface()
						if err := dir.to.Unmarshal(b, got); err != nil {
							t.Fatalf("%s: unmarshal %T: %v", dir.name, m, err)
						}
						if !proto.Equal(m, got) {
							t.Fatalf("%s: %v came back as %v", dir.name, m, got)
						}
					}
					if strings.Contains(cfg, "deterministic") {
						// The plugin applies its own options: same bytes.
						a, _ := bridged.Marshal(nil, m)
						b, _ := local.Marshal(nil, m)
						if !bytes.Equal(a, b) {
							t.Fatalf("deterministic %T: bridged and compiled-in encodings differ", m)
						}
					}
				}
			})
			t.Run("UnknownType", func(t *testing.T) {
				// A message type the plugin binary does not link fails
				// clearly, naming it.
				_, err := bridged.Marshal(nil, &dto.LabelPair{Name: proto.String("k"), Value: proto.String("v")})
				if err == nil || !strings.Contains(err.Error(), "io.prometheus.client.LabelPair") {
					t.Fatalf("marshal of a type unknown to the plugin: %v", err)
				}
			})
		})
	}
}
