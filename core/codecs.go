package core

import (
	"fmt"

	"github.com/kiterpc/kite/spi"
)

// RawCodec passes bytes through untouched: the request is a []byte (or
// *[]byte) and the response is filled into a *[]byte. It is built in
// because it is the identity, not an encoding choice; tools and proxies
// use it to forward bodies they do not decode.
type RawCodec struct{}

// Name implements spi.Codec.
func (RawCodec) Name() string { return "raw" }

// ID implements spi.Codec.
func (RawCodec) ID() uint8 { return spi.CodecRaw }

// Marshal implements spi.Codec.
func (RawCodec) Marshal(dst []byte, v any) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return append(dst, b...), nil
	case *[]byte:
		return append(dst, *b...), nil
	case nil:
		return dst, nil
	}
	return dst, spi.Errorf(spi.InvalidArgument, "raw codec: cannot marshal %T (want []byte)", v)
}

// Unmarshal implements spi.Codec.
func (RawCodec) Unmarshal(data []byte, v any) error {
	switch b := v.(type) {
	case *[]byte:
		*b = append((*b)[:0], data...)
		return nil
	case nil:
		return nil
	}
	return spi.Errorf(spi.InvalidArgument, "raw codec: cannot unmarshal into %T (want *[]byte)", v)
}

// chooseCodec returns the codec that encodes a call sending req and
// expecting resp: c itself, or, when c is a spi.CodecChooser ("auto"),
// the table's codec for the id it chooses (c when that id has none).
func chooseCodec(t *codecTable, c spi.Codec, req, resp any) spi.Codec {
	if ch, ok := c.(spi.CodecChooser); ok {
		if cc := t.codecs[ch.Choose(req, resp)]; cc != nil {
			return cc
		}
	}
	return c
}

// codecTable indexes codecs and compressors by wire id for O(1) lookup
// per frame.
type codecTable struct {
	codecs      [256]spi.Codec
	compressors [256]spi.Compressor
}

// newCodecTable fills a table from explicit values plus every codec and
// compressor in the catalog (built with an empty config), so a server
// answers any caller whose codec is linked into the binary.
func newCodecTable(cat *spi.Catalog, codecs []spi.Codec, comps []spi.Compressor) (*codecTable, error) {
	t := &codecTable{}
	t.codecs[spi.CodecRaw] = RawCodec{}
	if cat != nil {
		for _, name := range cat.Names(spi.KindCodec) {
			c, err := cat.BuildCodec(name, nil)
			if err != nil {
				return nil, fmt.Errorf("building codec %q: %w", name, err)
			}
			t.codecs[c.ID()] = c
		}
		for _, name := range cat.Names(spi.KindCompressor) {
			c, err := cat.BuildCompressor(name, nil)
			if err != nil {
				return nil, fmt.Errorf("building compressor %q: %w", name, err)
			}
			t.compressors[c.ID()] = c
		}
	}
	for _, c := range codecs {
		t.codecs[c.ID()] = c
	}
	for _, c := range comps {
		if c.ID() == spi.CompressNone {
			return nil, fmt.Errorf("compressor %q uses id 0, which means uncompressed", c.Name())
		}
		t.compressors[c.ID()] = c
	}
	// A program that links the auto codec but no protobuf codec still
	// decodes and answers the protobuf bodies auto sends: auto encodes
	// protobuf messages as protobuf (and a body that is not one fails to
	// decode, as with the real codec).
	if t.codecs[spi.CodecProto] == nil && t.codecs[spi.CodecAuto] != nil {
		t.codecs[spi.CodecProto] = t.codecs[spi.CodecAuto]
	}
	return t, nil
}
