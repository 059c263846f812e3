package jsoncodec

import (
	"bytes"
	"encoding/json"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kiterpc/kite/spi"
)

// Name is the catalog name of the codec.
const Name = "json"

// Config is the codec's kite.hcl block.
type Config struct {
	// EscapeHTML escapes <, > and & in strings as json.Marshal does. Off
	// by default: RPC bodies are not embedded in HTML, and escaping costs
	// time and bytes.
	EscapeHTML bool `json:"escape_html"`
	// DisallowUnknownFields makes Unmarshal reject an object key that
	// matches no field of the target struct, for strict APIs. Off by
	// default so that a newer peer may add fields.
	DisallowUnknownFields bool `json:"disallow_unknown_fields"`
}

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindCodec,
		Name:    Name,
		Version: "1.0.0",
		Doc:     "JSON bodies (encoding/json semantics); the default codec",
		Schema: spi.Schema{
			{Name: "escape_html", Type: spi.TypeBool, Doc: "escape <, > and & in strings (default false)"},
			{Name: "disallow_unknown_fields", Type: spi.TypeBool, Doc: "reject object keys that match no struct field (default false)"},
		},
		New: func(cfg spi.Config) (any, error) {
			var c Config
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
			return NewWithConfig(c), nil
		},
	})
}

// Codec is the JSON codec. It is safe for concurrent use.
type Codec struct {
	cfg      Config
	encoders sync.Pool // *encoder
	pjm      protojson.MarshalOptions
	pju      protojson.UnmarshalOptions
}

// encoder is a json.Encoder bound to a buffer it appends to, pooled so
// that Marshal writes straight into the caller's dst: json.Marshal would
// allocate a copy of every encoding only for us to copy it again.
type encoder struct {
	enc *json.Encoder
	w   appendWriter
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// New returns the JSON codec with the default configuration.
func New() *Codec { return NewWithConfig(Config{}) }

// NewWithConfig returns the JSON codec configured by cfg.
func NewWithConfig(cfg Config) *Codec {
	c := &Codec{cfg: cfg,
		pjm: protojson.MarshalOptions{},
		pju: protojson.UnmarshalOptions{DiscardUnknown: !cfg.DisallowUnknownFields},
	}
	c.encoders.New = func() any {
		e := &encoder{}
		e.enc = json.NewEncoder(&e.w)
		e.enc.SetEscapeHTML(cfg.EscapeHTML)
		return e
	}
	return c
}

// Name returns "json".
func (*Codec) Name() string { return Name }

// ID returns spi.CodecJSON.
func (*Codec) ID() uint8 { return spi.CodecJSON }

// Marshal appends the JSON encoding of v to dst. A protobuf message is
// encoded with protojson (the canonical JSON mapping: lowerCamelCase
// names, 64-bit integers as strings, enums by name, Timestamps in RFC
// 3339, oneofs as their set field), which encoding/json cannot do for
// generated code.
func (c *Codec) Marshal(dst []byte, v any) ([]byte, error) {
	if m, ok := protoMessage(v); ok {
		return c.marshalProto(dst, m, v)
	}
	e := c.encoders.Get().(*encoder)
	e.w.b = dst
	err := e.enc.Encode(v)
	out := e.w.b
	e.w.b = nil // do not keep the caller's buffer alive in the pool
	c.encoders.Put(e)
	if err != nil {
		return dst, spi.WrapError(spi.InvalidArgument, err, "json: encoding %T: %v", v, err)
	}
	// Encode ends every value with a newline; a body does not need it.
	return out[:len(out)-1], nil
}

// Unmarshal decodes the JSON value in data into v, which must be a
// non-nil pointer. It does not retain data. A protobuf message is decoded
// with protojson (see Marshal).
func (c *Codec) Unmarshal(data []byte, v any) error {
	if m, ok := protoMessage(v); ok {
		return c.unmarshalProto(data, m, v)
	}
	var err error
	if c.cfg.DisallowUnknownFields {
		err = c.strictUnmarshal(data, v)
	} else {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		return spi.WrapError(spi.InvalidArgument, err, "json: decoding into %T: %v", v, err)
	}
	return nil
}

func (c *Codec) strictUnmarshal(data []byte, v any) error {
	if !json.Valid(data) { // same errors as Unmarshal for malformed input
		return json.Unmarshal(data, v)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	// data is one valid JSON value, so Decode consumes all of it.
	return dec.Decode(v)
}
