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
	return t, nil
}
