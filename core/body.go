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
	_, err := decodeBodyIn(t, f, v, maxSize, nil)
	return err
}

// budget is where a server charges decompressed bodies (serverConn).
type budget interface {
	charge(n int64) bool
	uncharge(n int64)
	budgetError(what string, n int64) *spi.Error
}

// decodeBodyIn is decodeBody charging b (when not nil) for a compressed
// body before decompressing it: the size the compressor's header states
// (spi.DecodedSizer), else maxSize. Decompress gets the charged size as
// its limit, so no header can make it produce more than was charged. It
// returns the bytes charged, which the caller gives back with b.uncharge
// once the decoded value is no longer needed (also after an error).
func decodeBodyIn(t *codecTable, f *protocol.Frame, v any, maxSize int, b budget) (int64, error) {
	codec := t.codecs[f.Codec]
	if codec == nil {
		return 0, spi.Errorf(spi.Unimplemented, "unknown codec id %d (not linked into this binary)", f.Codec)
	}
	body := f.Body
	if f.Compress == spi.CompressNone {
		if err := codec.Unmarshal(body, v); err != nil {
			return 0, errDecoding(codec.Name(), err)
		}
		return 0, nil
	}
	comp := t.compressors[f.Compress]
	if comp == nil {
		return 0, spi.Errorf(spi.Unimplemented, "unknown compressor id %d (not linked into this binary)", f.Compress)
	}
	if maxSize <= 0 {
		maxSize = protocol.DefaultMaxFrame
	}
	limit, hint := maxSize, len(body)*4
	if ds, ok := comp.(spi.DecodedSizer); ok {
		n, err := ds.DecodedLen(body)
		if err != nil {
			return 0, spi.WrapError(spi.InvalidArgument, err, "decompressing body with %s", comp.Name())
		}
		if n > maxSize {
			return 0, spi.WrapError(spi.InvalidArgument, spi.Errorf(spi.ResourceExhausted, "body decompresses to %d bytes, over max_frame (%d)", n, maxSize), "decompressing body with %s", comp.Name())
		}
		if n >= 0 {
			limit, hint = n, n
		}
	}
	var charged int64
	if b != nil {
		charged = int64(limit)
		if !b.charge(charged) {
			return 0, b.budgetError("decompressed body", charged)
		}
	}
	sp := protocol.GetBuffer(min(hint, limit))
	out, err := comp.Decompress((*sp)[:0], body, limit)
	if err != nil {
		protocol.PutBuffer(sp)
		return charged, spi.WrapError(spi.InvalidArgument, err, "decompressing body with %s", comp.Name())
	}
	err = codec.Unmarshal(out, v)
	*sp = out[:0]
	protocol.PutBuffer(sp)
	if err != nil {
		return charged, errDecoding(codec.Name(), err)
	}
	return charged, nil
}
