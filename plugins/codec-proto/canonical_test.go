package protocodec_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	protocodec "github.com/kiterpc/kite/plugins/codec-proto"
	"github.com/kiterpc/kite/spi"
)

// canonicalCodec is plugin.CanonicalCodec, restated so that this package
// needs no import of the bridge.
type canonicalCodec interface {
	MarshalCanonical(dst, src []byte) ([]byte, error)
	UnmarshalCanonical(dst, src []byte) ([]byte, error)
}

var _ canonicalCodec = (*protocodec.Codec)(nil)

// The typed canonical form is what the plugin bridge sends: protojson of
// an Any to encode, an Any around the body to decode.
func TestCanonical(t *testing.T) {
	s, m, l := samples()
	for _, c := range []*protocodec.Codec{protocodec.New(), protocodec.NewWithConfig(protocodec.Config{Deterministic: true})} {
		for _, msg := range []proto.Message{s, m, l} {
			a, err := anypb.New(msg)
			require.NoError(t, err)
			canon, err := protojson.Marshal(a)
			require.NoError(t, err)

			wire, err := c.MarshalCanonical([]byte("prefix"), canon)
			require.NoError(t, err)
			require.Equal(t, "prefix", string(wire[:6]), "appends to dst")
			direct, err := c.Marshal(nil, msg)
			require.NoError(t, err)
			got := msg.ProtoReflect().Type().New().Interface()
			require.NoError(t, c.Unmarshal(wire[6:], got))
			assert.True(t, proto.Equal(msg, got))
			assert.Len(t, wire[6:], len(direct))

			packed, err := proto.Marshal(&anypb.Any{TypeUrl: a.TypeUrl, Value: direct})
			require.NoError(t, err)
			js, err := c.UnmarshalCanonical(nil, packed)
			require.NoError(t, err)
			back := msg.ProtoReflect().Type().New().Interface()
			require.NoError(t, protojson.Unmarshal(js, back))
			assert.True(t, proto.Equal(msg, back))
		}
	}
}

func TestCanonicalErrors(t *testing.T) {
	c := protocodec.New()
	// Not JSON, or JSON without a type.
	for _, in := range []string{"", "{", `{"id":1}`, `{"@type":"type.googleapis.com/no.such.Message"}`} {
		_, err := c.MarshalCanonical(nil, []byte(in))
		assert.Error(t, err, "%q", in)
	}
	// A type not linked in is named.
	packed, err := proto.Marshal(&anypb.Any{TypeUrl: "type.googleapis.com/no.such.Message", Value: []byte{8, 1}})
	require.NoError(t, err)
	_, err = c.UnmarshalCanonical(nil, packed)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no.such.Message")
	assert.Equal(t, spi.Unimplemented, spi.CodeOf(err))
	// A body that is not the named message.
	packed, err = proto.Marshal(&anypb.Any{TypeUrl: "type.googleapis.com/kite.codecproto.testpb.Small", Value: []byte{0xff, 0xff}})
	require.NoError(t, err)
	_, err = c.UnmarshalCanonical(nil, packed)
	assert.Error(t, err)
	// Not an Any at all.
	_, err = c.UnmarshalCanonical(nil, []byte{0xff})
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err))
}
