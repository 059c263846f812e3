package core

import (
	"errors"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2headers decodes the header blocks a gRPC connection receives (HEADERS
// and its CONTINUATIONs) with one hpack.Decoder and one field slice that
// live as long as the connection, on its reader goroutine only.
//
// It does what x/net/http2's Framer does with ReadMetaHeaders — the same
// checks (field names and values, pseudo-headers first and known, the
// header list size bound with decoding going on past it so the HPACK
// state stays in sync, the string length bound, a block that does not end
// cleanly) — without the allocations the Framer makes per block (the
// MetaHeadersFrame, its emit closure and captured counters, the growing
// field slice): about six per call on the gRPC server's hot path.
type h2headers struct {
	dec *hpack.Decoder
	max uint32

	// the block being decoded
	blk        headerBlock
	remain     uint32
	sawRegular bool
	seen       uint8 // pseudo-headers seen (bit per name)
	invalid    error
}

// headerBlock is one decoded request header block (valid until the next
// block is decoded: Fields is reused).
type headerBlock struct {
	StreamID  uint32
	ended     bool
	Truncated bool // the list exceeded max_metadata; Fields holds what fit
	Fields    []hpack.HeaderField
}

// StreamEnded reports END_STREAM on the HEADERS frame.
func (b *headerBlock) StreamEnded() bool { return b.ended }

// PseudoValue returns the value of pseudo-header ":"+name, or "".
func (b *headerBlock) PseudoValue(name string) string {
	for _, f := range b.Fields {
		if !strings.HasPrefix(f.Name, ":") {
			break // pseudo-headers come first (checked)
		}
		if f.Name[1:] == name {
			return f.Value
		}
	}
	return ""
}

// RegularFields returns the fields that are not pseudo-headers.
func (b *headerBlock) RegularFields() []hpack.HeaderField {
	for i, f := range b.Fields {
		if !strings.HasPrefix(f.Name, ":") {
			return b.Fields[i:]
		}
	}
	return nil
}

func newH2Headers(maxList uint32) *h2headers {
	d := &h2headers{max: maxList}
	d.dec = hpack.NewDecoder(4096, d.emit)
	d.dec.SetMaxStringLength(int(maxList))
	return d
}

var (
	errPseudoAfterRegular = errors.New("pseudo header field after regular")
	errPseudoUnknown      = errors.New("invalid or duplicate pseudo-header")
	errHeaderFieldName    = errors.New("invalid header field name")
	errHeaderFieldValue   = errors.New("invalid header field value")
)

// pseudoBit numbers the request pseudo-headers (0: not one of them).
func pseudoBit(name string) uint8 {
	switch name {
	case ":method":
		return 1
	case ":path":
		return 2
	case ":scheme":
		return 4
	case ":authority":
		return 8
	case ":protocol":
		return 16
	}
	return 0
}

func (d *h2headers) emit(hf hpack.HeaderField) {
	if d.invalid != nil {
		return
	}
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		d.invalid = errHeaderFieldValue
	} else if strings.HasPrefix(hf.Name, ":") {
		b := pseudoBit(hf.Name)
		switch {
		case d.sawRegular:
			d.invalid = errPseudoAfterRegular
		case b == 0 || d.seen&b != 0:
			d.invalid = errPseudoUnknown
		}
		d.seen |= b
	} else {
		d.sawRegular = true
		if !validWireName(hf.Name) {
			d.invalid = errHeaderFieldName
		}
	}
	if d.invalid != nil {
		d.dec.SetEmitEnabled(false)
		return
	}
	size := hf.Size()
	if size > d.remain {
		// Past max_metadata: keep decoding (the HPACK table must follow
		// the peer's) but keep nothing more.
		d.dec.SetEmitEnabled(false)
		d.blk.Truncated = true
		d.remain = 0
		return
	}
	d.remain -= size
	d.blk.Fields = append(d.blk.Fields, hf)
}

// validWireName: a lower-case HTTP token, as HTTP/2 requires.
func validWireName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !httpguts.IsTokenRune(rune(c)) || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// begin starts the block a HEADERS frame of stream id opens (ended: it
// has END_STREAM).
func (d *h2headers) begin(id uint32, ended bool) {
	clear(d.blk.Fields) // drop the last block's strings
	d.blk = headerBlock{StreamID: id, ended: ended, Fields: d.blk.Fields[:0]}
	d.remain = d.max
	d.sawRegular, d.seen, d.invalid = false, 0, nil
	d.dec.SetEmitEnabled(true)
}

// write decodes one fragment of the block. A connection error ends the
// connection (the HPACK state can no longer be trusted).
func (d *h2headers) write(frag []byte) error {
	// As the Framer: a fragment far beyond what may still be kept, or
	// any after an invalid field, closes the connection rather than
	// being decoded for nothing.
	limit := 2 * (int64(d.remain) + int64(d.max))
	if d.blk.Truncated {
		limit = 0
	}
	if int64(len(frag)) > limit || d.invalid != nil && len(frag) > 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if _, err := d.dec.Write(frag); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	return nil
}

// end finishes the block: a connection error if it ended inside a field,
// a stream error for invalid fields, else the block.
func (d *h2headers) end() (*headerBlock, error) {
	if err := d.dec.Close(); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if d.invalid != nil {
		return nil, http2.StreamError{StreamID: d.blk.StreamID, Code: http2.ErrCodeProtocol, Cause: d.invalid}
	}
	return &d.blk, nil
}
