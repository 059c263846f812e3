package protocodec

import (
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/kiterpc/kite/spi"
)

// The methods below make the codec a plugin.CanonicalCodec, so it can be
// served out of process (spi/plugin; this package does not import it).
// Go values cannot cross a process boundary and a protobuf encoding needs
// the message's type, so for codecs with the protobuf wire id the bridge
// sends messages in a typed canonical form built from protobuf's own
// conventions:
//
//   - to encode, the message's protojson form packed as a
//     google.protobuf.Any, i.e. {"@type": "type.googleapis.com/<name>",
//     …fields};
//   - to decode, the body packed as a google.protobuf.Any (its type URL
//     naming the message to decode into, its value the body), answered
//     with the message's protojson form.
//
// The type is resolved among the messages linked into the plugin binary
// (protoregistry.GlobalTypes). The stock kite-codec-proto links the
// well-known types; to serve your own messages, build a plugin main that
// also imports your generated packages.

// MarshalCanonical appends the protobuf encoding of the message whose
// typed canonical form (protojson of an Any) is in src.
func (c *Codec) MarshalCanonical(dst, src []byte) ([]byte, error) {
	var a anypb.Any
	if err := protojson.Unmarshal(src, &a); err != nil {
		return dst, spi.WrapError(spi.InvalidArgument, err,
			"proto: canonical form is not a message packed as google.protobuf.Any with a type linked into this binary: %v", err)
	}
	m, err := newMessage(a.TypeUrl)
	if err != nil {
		return dst, err
	}
	// The Any's value was encoded by protojson with default options;
	// decode and encode again so this codec's options (deterministic map
	// order) decide the bytes.
	if err := proto.Unmarshal(a.Value, m); err != nil {
		return dst, spi.WrapError(spi.InvalidArgument, err, "proto: %s: %v", a.TypeUrl, err)
	}
	return c.Marshal(dst, m)
}

// UnmarshalCanonical decodes the body packed in the google.protobuf.Any
// encoded in src into the message its type URL names, and appends that
// message's protojson form.
func (c *Codec) UnmarshalCanonical(dst, src []byte) ([]byte, error) {
	var a anypb.Any
	if err := proto.Unmarshal(src, &a); err != nil {
		return dst, spi.WrapError(spi.InvalidArgument, err, "proto: decode request is not a google.protobuf.Any: %v", err)
	}
	m, err := newMessage(a.TypeUrl)
	if err != nil {
		return dst, err
	}
	if err := c.Unmarshal(a.Value, m); err != nil {
		return dst, err
	}
	out, err := protojson.MarshalOptions{}.MarshalAppend(dst, m)
	if err != nil {
		return dst, spi.WrapError(spi.Internal, err, "proto: %s has no protojson form: %v", a.TypeUrl, err)
	}
	return out, nil
}

func newMessage(typeURL string) (proto.Message, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(typeURL)
	if err != nil {
		return nil, spi.WrapError(spi.Unimplemented, err,
			"proto: message type %q is not linked into this plugin binary (build a plugin main that imports its generated package)", typeURL)
	}
	return mt.New().Interface(), nil
}
