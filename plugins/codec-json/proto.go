package jsoncodec

import (
	"reflect"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"

	"github.com/kiterpc/kite/spi"
)

// protoMessage returns v as a protobuf message when it is one (generated
// by protoc-gen-go, or a legacy github.com/golang/protobuf message).
func protoMessage(v any) (proto.Message, bool) {
	switch m := v.(type) {
	case proto.Message:
		return m, true
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(m), true
	}
	return nil, false
}

// isNilPointer reports whether v is a nil pointer inside an interface.
func isNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

func (c *Codec) marshalProto(dst []byte, m proto.Message, v any) ([]byte, error) {
	out, err := c.pjm.MarshalAppend(dst, m)
	if err != nil {
		return dst, spi.WrapError(spi.InvalidArgument, err, "json: encoding %T with protojson: %v", v, err)
	}
	return out, nil
}

func (c *Codec) unmarshalProto(data []byte, m proto.Message, v any) error {
	if isNilPointer(v) {
		return spi.Errorf(spi.InvalidArgument, "json: cannot decode into a nil %T", v)
	}
	if err := c.pju.Unmarshal(data, m); err != nil {
		return spi.WrapError(spi.InvalidArgument, err, "json: decoding into %T with protojson: %v", v, err)
	}
	return nil
}

// AutoName is the catalog name of the auto codec.
const AutoName = "auto"

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindCodec,
		Name:    AutoName,
		Version: "1.0.0",
		Doc:     "protobuf when request and response are protobuf messages, JSON otherwise (the default codec)",
		Schema: spi.Schema{
			{Name: "escape_html", Type: spi.TypeBool, Doc: "JSON half: escape <, > and & in strings (default false)"},
			{Name: "disallow_unknown_fields", Type: spi.TypeBool, Doc: "JSON half: reject object keys that match no struct field (default false)"},
		},
		New: func(cfg spi.Config) (any, error) {
			var c Config
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
			return NewAutoWithConfig(c), nil
		},
	})
}

// Auto is the "auto" codec, Kite's default: a unary call whose request
// and response are both protobuf messages travels as protobuf (wire id
// spi.CodecProto), any other as JSON (spi.CodecJSON). The id travels in
// each frame, so the server needs only the chosen codec and answers in
// it, and a JSON-only peer (kite call, a script, another language) still
// talks JSON to the same server. Core asks Choose per call
// (spi.CodecChooser).
//
// Stream messages, whose types core does not know when the stream opens,
// carry Auto's own id (spi.CodecAuto): Marshal and Unmarshal then pick by
// Go type, protobuf for protobuf messages and JSON for anything else, so
// both ends need the auto codec (every program that links the kite
// package has it).
type Auto struct {
	json *Codec
	mo   proto.MarshalOptions
	uo   proto.UnmarshalOptions
}

// NewAuto returns the auto codec with the default JSON configuration.
func NewAuto() *Auto { return NewAutoWithConfig(Config{}) }

// NewAutoWithConfig returns the auto codec whose JSON half is configured
// by cfg.
func NewAutoWithConfig(cfg Config) *Auto { return &Auto{json: NewWithConfig(cfg)} }

// Name returns "auto".
func (*Auto) Name() string { return AutoName }

// ID returns spi.CodecAuto.
func (*Auto) ID() uint8 { return spi.CodecAuto }

// Choose implements spi.CodecChooser: spi.CodecProto when req and resp
// (resp may be nil: a one-way call) are protobuf messages, spi.CodecJSON
// otherwise.
func (*Auto) Choose(req, resp any) uint8 {
	if _, ok := protoMessage(req); !ok {
		return spi.CodecJSON
	}
	if resp != nil {
		if _, ok := protoMessage(resp); !ok {
			return spi.CodecJSON
		}
	}
	return spi.CodecProto
}

// vtMessage is the vtprotobuf-generated fast path (see codec-proto).
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT(dAtA []byte) (int, error)
	UnmarshalVT(dAtA []byte) error
}

// Marshal appends v's encoding: protobuf for a protobuf message, JSON
// for anything else.
func (a *Auto) Marshal(dst []byte, v any) ([]byte, error) {
	m, ok := protoMessage(v)
	if !ok {
		return a.json.Marshal(dst, v)
	}
	if vt, ok := v.(vtMessage); ok {
		n := vt.SizeVT()
		l := len(dst)
		dst = slices.Grow(dst, n)
		k, err := vt.MarshalToSizedBufferVT(dst[l : l+n])
		if err != nil || k != n {
			return dst[:l], spi.Errorf(spi.InvalidArgument, "auto: encoding %T: %v", v, err)
		}
		return dst[:l+n], nil
	}
	out, err := a.mo.MarshalAppend(dst, m)
	if err != nil {
		return dst, spi.WrapError(spi.InvalidArgument, err, "auto: encoding %T: %v", v, err)
	}
	return out, nil
}

// Unmarshal decodes data into v: as protobuf when v is a protobuf
// message, as JSON otherwise.
func (a *Auto) Unmarshal(data []byte, v any) error {
	m, ok := protoMessage(v)
	if !ok {
		return a.json.Unmarshal(data, v)
	}
	if isNilPointer(v) {
		return spi.Errorf(spi.InvalidArgument, "auto: cannot decode into a nil %T", v)
	}
	if vt, ok := v.(vtMessage); ok {
		proto.Reset(m)
		if err := vt.UnmarshalVT(data); err != nil {
			return spi.WrapError(spi.InvalidArgument, err, "auto: decoding into %T: %v", v, err)
		}
		return nil
	}
	if err := a.uo.Unmarshal(data, m); err != nil {
		return spi.WrapError(spi.InvalidArgument, err, "auto: decoding into %T: %v", v, err)
	}
	return nil
}
