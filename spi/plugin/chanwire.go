package plugin

import (
	"encoding/binary"
	"errors"

	"github.com/kiterpc/kite/spi"
)

// The payloads of the filter channel's frames, in a compact binary form
// (docs/PLUGIN-PROTOCOL.md, "The filter channel"). Integers are
// unsigned LEB128 varints ("uv") unless said otherwise; a string or byte
// string is its uv length and its bytes; metadata is a uv count of pairs,
// then key and value strings.
//
//	before request:  uv handle, u8 side, u8 flags (1 one-way, 2 stream),
//	                 uv deadline (Unix ns, 0 none), method, peer, metadata
//	before answer:   u8 flags (1 proceed, 2 metadata changed), uv call id
//	                 (0: no after), status, [metadata if changed]
//	after request:   uv handle, uv call id, status (the call's result),
//	                 trailer metadata
//	after answer:    u8 flags (2 trailer changed), status, [trailer if changed]
//	fail answer:     status
//	status:          uv code (0 OK: nothing follows), message, details

const (
	flagOneWay = 1
	flagStream = 2

	flagProceed = 1
	flagChanged = 2
)

var errShortPayload = errors.New("filter channel: truncated or malformed payload")

func putUv(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func putStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func putBytes(b []byte, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func putMeta(b []byte, m *spi.Metadata) []byte {
	b = binary.AppendUvarint(b, uint64(m.Len()))
	m.Range(func(k, v string) bool {
		b = putStr(b, k)
		b = putStr(b, v)
		return true
	})
	return b
}

func putStatus(b []byte, err error) []byte {
	if err == nil {
		return append(b, 0)
	}
	e := spi.AsError(err)
	code := e.Code
	if code == spi.OK {
		code = spi.Unknown
	}
	b = binary.AppendUvarint(b, uint64(code))
	b = putStr(b, e.Message)
	return putBytes(b, e.Details)
}

// rd reads a payload; the first error sticks and makes every read zero.
type rd struct {
	b   []byte
	bad bool
}

func (r *rd) uv() uint64 {
	if r.bad {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rd) u8() byte {
	if r.bad || len(r.b) == 0 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *rd) raw() []byte {
	n := r.uv()
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *rd) str() string { return string(r.raw()) }

// meta reads metadata into m (replacing its pairs).
func (r *rd) meta(m *spi.Metadata) {
	n := r.uv()
	if n > uint64(len(r.b))/2 { // each pair takes at least two bytes
		r.bad = true
		return
	}
	m.Reset()
	for range n {
		k, v := r.str(), r.str()
		if r.bad {
			return
		}
		m.Add(k, v)
	}
}

// status reads a status: nil for OK, else an *spi.Error.
func (r *rd) status() error {
	code := r.uv()
	if code == 0 || r.bad {
		return nil
	}
	msg := r.str()
	var details []byte
	if d := r.raw(); len(d) > 0 {
		details = append([]byte(nil), d...)
	}
	if code > 0xffff {
		r.bad = true
	}
	return &spi.Error{Code: spi.Code(code), Message: msg, Details: details}
}

func (r *rd) err() error {
	if r.bad {
		return errShortPayload
	}
	return nil
}

// sameMeta reports whether m holds exactly the pairs kv (k0, v0, …).
func sameMeta(m *spi.Metadata, kv []string) bool {
	if m.Len()*2 != len(kv) {
		return false
	}
	i, same := 0, true
	m.Range(func(k, v string) bool {
		same = k == kv[i] && v == kv[i+1]
		i += 2
		return same
	})
	return same
}

// pairs returns m's pairs as k0, v0, k1, v1, …
func pairs(m *spi.Metadata) []string {
	if m.Len() == 0 {
		return nil
	}
	kv := make([]string, 0, 2*m.Len())
	m.Range(func(k, v string) bool {
		kv = append(kv, k, v)
		return true
	})
	return kv
}
