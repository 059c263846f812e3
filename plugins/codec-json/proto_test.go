package jsoncodec_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiterpc/kite/internal/testpb"
	jsoncodec "github.com/kiterpc/kite/plugins/codec-json"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// kinds returns one Kinds message per oneof case, each with every other
// shape set: an int64 beyond 2^53 (a float64 would round it), the largest
// uint64, an enum, a Timestamp with nanoseconds, both maps, a repeated
// message, bytes and an optional field.
func kinds() []*testpb.Kinds {
	at := timestamppb.New(time.Date(2026, 12, 4, 5, 6, 7, 890123456, time.UTC))
	base := func() *testpb.Kinds {
		note := "set but empty is not absent"
		return &testpb.Kinds{
			Id: 9007199254740993, Big: 18446744073709551615, Color: testpb.Color_COLOR_BLUE, At: at,
			Counts: map[string]int64{"a": -1, "b": 1 << 62},
			Points: map[int32]*testpb.Point{-3: {X: 1, Y: 2}, 7: {}},
			Path:   []*testpb.Point{{X: 1}, {Y: -1}},
			Blob:   []byte{0, 1, 0xfe, 0xff}, Note: &note,
		}
	}
	text, point, number := base(), base(), base()
	text.Choice = &testpb.Kinds_Text{Text: "hello"}
	point.Choice = &testpb.Kinds_Point{Point: &testpb.Point{X: -5, Y: 5}}
	number.Choice = &testpb.Kinds_Number{Number: -9007199254740993}
	return []*testpb.Kinds{text, point, number, {}}
}

func protoEqual(want, got any) bool {
	w, ok1 := want.(proto.Message)
	g, ok2 := got.(proto.Message)
	return ok1 && ok2 && proto.Equal(w, g)
}

// TestProtoMessagesUseProtojson: the JSON codec carries generated
// protobuf messages in protojson's canonical mapping. encoding/json
// cannot decode a oneof into generated code (an interface field); the
// codec must, and must keep 64-bit integers exact.
func TestProtoMessagesUseProtojson(t *testing.T) {
	c := jsoncodec.New()
	samples := kinds()

	// What the codec replaces: encoding/json fails on the oneof.
	raw, err := json.Marshal(samples[0])
	require.NoError(t, err)
	require.Error(t, json.Unmarshal(raw, new(testpb.Kinds)), "encoding/json decodes a oneof into generated code?")

	for _, m := range samples {
		b, err := c.Marshal(nil, m)
		require.NoError(t, err)
		got := new(testpb.Kinds)
		require.NoError(t, c.Unmarshal(b, got), "%s", b)
		assert.True(t, proto.Equal(m, got), "round trip changed it:\nwant %v\n got %v\nwire %s", m, got, b)
	}

	b, err := c.Marshal([]byte("prefix:"), samples[0])
	require.NoError(t, err)
	s := string(b)
	assert.Contains(t, s, "prefix:{", "appends to dst")
	for _, want := range []string{
		`"id":"9007199254740993"`,               // int64 as a string: exact in every JSON reader
		`"big":"18446744073709551615"`,          // uint64 likewise
		`"color":"COLOR_BLUE"`,                  // enum by name
		`"at":"2026-12-04T05:06:07.890123456Z"`, // Timestamp in RFC 3339
		`"counts":{`, `"points":{`,              // maps as objects
		`"text":"hello"`,    // the oneof as its set field
		`"blob":"AAH+/w=="`, // bytes as base64
	} {
		assert.Contains(t, s, want)
	}

	// A peer in another language writes names as declared in the .proto
	// or enum numbers; protojson reads both. Unknown keys are ignored by
	// default, as for structs (a newer peer may add fields).
	in := `{"id":"42","color":1,"at":"2026-01-02T03:04:05Z","counts":{"x":"3"},"point":{"x":1},"trace":"ignored"}`
	var got testpb.Kinds
	require.NoError(t, c.Unmarshal([]byte(in), &got))
	assert.Equal(t, int64(42), got.Id)
	assert.Equal(t, testpb.Color_COLOR_RED, got.Color)
	assert.Equal(t, int64(3), got.Counts["x"])
	assert.Equal(t, int32(1), got.GetPoint().GetX())
	assert.Equal(t, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), got.At.AsTime())

	strict := jsoncodec.NewWithConfig(jsoncodec.Config{DisallowUnknownFields: true})
	err = strict.Unmarshal([]byte(in), new(testpb.Kinds))
	require.Error(t, err)
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err))
	assert.Contains(t, err.Error(), "trace")

	err = c.Unmarshal([]byte(`{"id":"x"}`), new(testpb.Kinds))
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err))
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(c.Unmarshal([]byte(`{}`), (*testpb.Kinds)(nil))))

	// The conformance suite over the same messages.
	all := make([]any, len(samples))
	for i, m := range samples {
		all[i] = m
	}
	spitest.CodecSuite{Codec: c, New: func() any { return new(testpb.Kinds) }, Samples: all, Equal: protoEqual}.Run(t)
}

// TestAutoChooses: auto picks protobuf only when both sides of a call are
// protobuf messages.
func TestAutoChooses(t *testing.T) {
	a := jsoncodec.NewAuto()
	assert.Equal(t, "auto", a.Name())
	assert.Equal(t, spi.CodecAuto, a.ID())
	var ch spi.CodecChooser = a
	k := &testpb.Kinds{}
	for _, tc := range []struct {
		req, resp any
		want      uint8
	}{
		{k, &testpb.Point{}, spi.CodecProto},
		{k, nil, spi.CodecProto}, // one-way
		{k, new(Small), spi.CodecJSON},
		{&Small{}, k, spi.CodecJSON},
		{&Small{}, new(Small), spi.CodecJSON},
		{int64(1), new(string), spi.CodecJSON},
		{nil, k, spi.CodecJSON},
	} {
		assert.Equal(t, tc.want, ch.Choose(tc.req, tc.resp), "%T -> %T", tc.req, tc.resp)
	}
}

// TestAutoConformance: auto's own bodies (stream messages) are protobuf
// for protobuf messages and JSON for anything else, and pass the codec
// contract either way.
func TestAutoConformance(t *testing.T) {
	a := jsoncodec.NewAuto()
	ks := kinds()
	all := make([]any, len(ks))
	for i, m := range ks {
		all[i] = m
	}
	t.Run("Proto", spitest.CodecSuite{Codec: a, New: func() any { return new(testpb.Kinds) }, Samples: all, Equal: protoEqual}.Run)
	s, m, _ := samples()
	t.Run("Struct", func(t *testing.T) { spitest.TestCodec(t, a, func() any { return new(Small) }, s) })
	t.Run("Medium", func(t *testing.T) { spitest.TestCodec(t, a, func() any { return new(Medium) }, m) })

	// A protobuf message is encoded as protobuf: the protobuf decoder reads
	// it (map order varies from run to run, so bytes are not compared).
	b, err := a.Marshal(nil, ks[0])
	require.NoError(t, err)
	var back testpb.Kinds
	require.NoError(t, proto.Unmarshal(b, &back))
	assert.True(t, proto.Equal(ks[0], &back))
	// Anything else as JSON.
	b, err = a.Marshal(nil, &Small{ID: 7})
	require.NoError(t, err)
	assert.Contains(t, string(b), `"id":7`)
}
