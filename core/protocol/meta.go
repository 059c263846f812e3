package protocol

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/kiterpc/kite/spi"
)

// Metadata tags. Every entry is [tag:1][len:uvarint][value:len], so a
// decoder skips tags it does not know (forward compatibility).
const (
	TagMethod     uint8 = 0x01 // "Service.Method"
	TagTimeout    uint8 = 0x02 // uvarint microseconds left when sent
	TagErrCode    uint8 = 0x03 // uvarint spi.Code
	TagErrMessage uint8 = 0x04
	TagErrDetails uint8 = 0x05

	// Well-known metadata keys, value only.
	TagAuthorization uint8 = 0x10
	TagTraceParent   uint8 = 0x11
	TagTraceState    uint8 = 0x12
	TagCaller        uint8 = 0x13
	TagIdempotent    uint8 = 0x14

	// TagKV carries any other key: value = [klen:uvarint][key][value].
	TagKV uint8 = 0x7F
)

var wellKnown = map[string]uint8{
	spi.MetaAuthorization: TagAuthorization,
	spi.MetaTraceParent:   TagTraceParent,
	spi.MetaTraceState:    TagTraceState,
	spi.MetaCaller:        TagCaller,
	spi.MetaIdempotent:    TagIdempotent,
}

var wellKnownKey = [...]string{
	TagAuthorization - 0x10: spi.MetaAuthorization,
	TagTraceParent - 0x10:   spi.MetaTraceParent,
	TagTraceState - 0x10:    spi.MetaTraceState,
	TagCaller - 0x10:        spi.MetaCaller,
	TagIdempotent - 0x10:    spi.MetaIdempotent,
}

// ErrBadMetadata reports a malformed metadata section.
var ErrBadMetadata = errors.New("kite protocol: malformed metadata")

// Meta is a decoded metadata section. Method, ErrMessage and ErrDetails
// alias the frame buffer.
type Meta struct {
	Method     []byte
	Timeout    time.Duration
	HasTimeout bool
	ErrCode    spi.Code
	ErrMessage []byte
	ErrDetails []byte
	// MD receives the key/value pairs; nil to skip them.
	MD *spi.Metadata
}

// DecodeMeta parses b into m.
func DecodeMeta(b []byte, m *Meta) error {
	for len(b) > 0 {
		tag := b[0]
		l, n := binary.Uvarint(b[1:])
		if n <= 0 || l > uint64(len(b)-1-n) {
			return ErrBadMetadata
		}
		v := b[1+n : 1+n+int(l)]
		b = b[1+n+int(l):]
		switch {
		case tag == TagMethod:
			m.Method = v
		case tag == TagTimeout:
			us, k := binary.Uvarint(v)
			if k <= 0 || us > uint64(1<<62)/1000 {
				return ErrBadMetadata
			}
			m.Timeout = time.Duration(us) * time.Microsecond
			m.HasTimeout = true
		case tag == TagErrCode:
			c, k := binary.Uvarint(v)
			if k <= 0 || c > 0xFFFF {
				return ErrBadMetadata
			}
			m.ErrCode = spi.Code(c)
		case tag == TagErrMessage:
			m.ErrMessage = v
		case tag == TagErrDetails:
			m.ErrDetails = v
		case tag >= TagAuthorization && int(tag-TagAuthorization) < len(wellKnownKey):
			if m.MD != nil {
				m.MD.Add(wellKnownKey[tag-TagAuthorization], string(v))
			}
		case tag == TagKV:
			kl, k := binary.Uvarint(v)
			if k <= 0 || kl > uint64(len(v)-k) {
				return ErrBadMetadata
			}
			if m.MD != nil {
				m.MD.Add(string(v[k:k+int(kl)]), string(v[k+int(kl):]))
			}
		default:
			// Unknown tag from a newer peer: skip.
		}
	}
	return nil
}

func appendEntry(b []byte, tag uint8, v string) []byte {
	b = append(b, tag)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendEntryBytes(b []byte, tag uint8, v []byte) []byte {
	b = append(b, tag)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendUvarintEntry(b []byte, tag uint8, x uint64) []byte {
	var tmp [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(tmp[:], x)
	b = append(b, tag, byte(n))
	return append(b, tmp[:n]...)
}

// AppendMethod appends the method entry.
func AppendMethod(b []byte, method string) []byte { return appendEntry(b, TagMethod, method) }

// AppendTimeout appends the time left for the call, rounded up to a
// microsecond so a positive budget never reads as zero.
func AppendTimeout(b []byte, d time.Duration) []byte {
	if d < 0 {
		d = 0
	}
	us := (d + time.Microsecond - 1) / time.Microsecond
	return appendUvarintEntry(b, TagTimeout, uint64(us))
}

// AppendError appends an error status.
func AppendError(b []byte, e *spi.Error) []byte {
	b = appendUvarintEntry(b, TagErrCode, uint64(e.Code))
	if e.Message != "" {
		b = appendEntry(b, TagErrMessage, e.Message)
	}
	if len(e.Details) > 0 {
		b = appendEntryBytes(b, TagErrDetails, e.Details)
	}
	return b
}

// AppendMD appends key/value pairs.
func AppendMD(b []byte, md *spi.Metadata) []byte {
	md.Range(func(k, v string) bool {
		if tag, ok := wellKnown[k]; ok {
			b = appendEntry(b, tag, v)
			return true
		}
		b = append(b, TagKV)
		b = binary.AppendUvarint(b, uint64(uvarintLen(uint64(len(k)))+len(k)+len(v)))
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = append(b, v...)
		return true
	})
	return b
}

// Err returns the error status carried by m, or nil.
func (m *Meta) Err() *spi.Error {
	if m.ErrCode == spi.OK {
		return nil
	}
	e := &spi.Error{Code: m.ErrCode, Message: string(m.ErrMessage)}
	if len(m.ErrDetails) > 0 {
		e.Details = append([]byte(nil), m.ErrDetails...)
	}
	return e
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
