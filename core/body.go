package core

import (
	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"
)

// compressBody compresses the body being built in fb in place when comp is
// set and the body is at least thresh bytes; smaller bodies travel raw,
// since compressing them costs more CPU than the bytes it saves.
func compressBody(fb *protocol.Builder, comp spi.Compressor, thresh int) error {
	if comp == nil {
		return nil
	}
	start := fb.BodyStart()
	body := fb.B[start:]
	if len(body) < thresh || len(body) == 0 {
		return nil
	}
	sp := protocol.GetBuffer(len(body) + len(body)/8 + 64)
	out, err := comp.Compress((*sp)[:0], body)
	if err != nil {
		protocol.PutBuffer(sp)
		return spi.WrapError(spi.Internal, err, "compressing body with %s", comp.Name())
	}
	fb.B = append(fb.B[:start], out...)
	*sp = out[:0]
	protocol.PutBuffer(sp)
	fb.SetCompress(comp.ID())
	return nil
}

// decodeBody decompresses (if needed) and decodes f's body into v. Unknown
// codec or compressor ids are reported with a clear code; the connection
// stays up.
func decodeBody(t *codecTable, f *protocol.Frame, v any, maxSize int) error {
	codec := t.codecs[f.Codec]
	if codec == nil {
		return spi.Errorf(spi.Unimplemented, "unknown codec id %d (not linked into this binary)", f.Codec)
	}
	body := f.Body
	if f.Compress != spi.CompressNone {
		comp := t.compressors[f.Compress]
		if comp == nil {
			return spi.Errorf(spi.Unimplemented, "unknown compressor id %d (not linked into this binary)", f.Compress)
		}
		if maxSize <= 0 {
			maxSize = protocol.DefaultMaxFrame
		}
		sp := protocol.GetBuffer(len(body) * 4)
		out, err := comp.Decompress((*sp)[:0], body, maxSize)
		if err != nil {
			protocol.PutBuffer(sp)
			return spi.WrapError(spi.InvalidArgument, err, "decompressing body with %s", comp.Name())
		}
		err = codec.Unmarshal(out, v)
		*sp = out[:0]
		protocol.PutBuffer(sp)
		if err != nil {
			return errDecoding(codec.Name(), err)
		}
		return nil
	}
	if err := codec.Unmarshal(body, v); err != nil {
		return errDecoding(codec.Name(), err)
	}
	return nil
}
