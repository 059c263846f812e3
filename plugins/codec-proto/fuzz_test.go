package protocodec_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	protocodec "github.com/kiterpc/kite/plugins/codec-proto"
	"github.com/kiterpc/kite/plugins/codec-proto/internal/testpb"
)

// FuzzUnmarshal feeds arbitrary bytes to the codec's Unmarshal into each
// test message shape (scalars, repeated, maps, bytes, nested messages and
// the recursive well-known Struct). It must never panic; what it accepts
// must re-encode and decode to an equal message; the decoded message must
// not alias the input buffer (the caller reuses it); and DiscardUnknown
// must accept exactly what the default codec accepts.
func FuzzUnmarshal(f *testing.F) {
	s, m, l := samples()
	l.Items = l.Items[:3]
	st, err := structpb.NewStruct(map[string]any{"user": "ada", "id": 1001.0, "tags": []any{"a", true, nil}, "nested": map[string]any{"k": 1.5}})
	if err != nil {
		f.Fatal(err)
	}
	for _, msg := range []proto.Message{s, m, l, st, &testpb.Small{}} {
		b, err := proto.Marshal(msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x80})                   // length beyond the end
	f.Add([]byte{0x08, 0xff, 0xff, 0xff, 0xff}) // truncated varint
	f.Add([]byte{0x12, 0x02, 0xff, 0xfe})       // invalid UTF-8 in a string
	f.Add([]byte{0xfa, 0xff, 0xff, 0xff, 0x0f}) // field number out of range
	f.Add([]byte{0x0b, 0x0c})                   // empty group
	f.Add([]byte{0x9a, 0x05, 0x01, 0x41})       // unknown field 83

	plain := protocodec.New()
	discard := protocodec.NewWithConfig(protocodec.Config{DiscardUnknown: true, Deterministic: true})
	shapes := []func() proto.Message{
		func() proto.Message { return new(testpb.Small) },
		func() proto.Message { return new(testpb.Medium) },
		func() proto.Message { return new(testpb.Large) },
		func() proto.Message { return new(structpb.Struct) },
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fresh := range shapes {
			in := append([]byte(nil), data...)
			got := fresh()
			err := plain.Unmarshal(in, got)
			other := fresh()
			derr := discard.Unmarshal(data, other)
			if (err == nil) != (derr == nil) {
				t.Fatalf("%T: default codec err=%v but DiscardUnknown err=%v", got, err, derr)
			}
			if err != nil {
				continue
			}
			snapshot := proto.Clone(got)
			for i := range in {
				in[i] ^= 0xff // scribble: an aliasing decode would change
			}
			if !proto.Equal(snapshot, got) {
				t.Fatalf("%T: decoded message aliases the input buffer", got)
			}
			roundTrip(t, plain, got, fresh)
			if len(other.ProtoReflect().GetUnknown()) != 0 {
				t.Fatalf("%T: DiscardUnknown kept unknown fields", other)
			}
			roundTrip(t, discard, other, fresh)
		}
	})
}

// roundTrip encodes msg with c, decodes it into a fresh message and
// checks the result equals msg.
func roundTrip(t *testing.T, c *protocodec.Codec, msg proto.Message, fresh func() proto.Message) {
	t.Helper()
	enc, err := c.Marshal(nil, msg)
	if err != nil {
		t.Fatalf("%T: decoded message does not encode: %v", msg, err)
	}
	again := fresh()
	if err := c.Unmarshal(enc, again); err != nil {
		t.Fatalf("%T: codec output does not decode: %v", msg, err)
	}
	if !proto.Equal(msg, again) {
		t.Fatalf("%T: round trip changed the message:\nwant %v\ngot  %v", msg, msg, again)
	}
}
