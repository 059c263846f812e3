package hessiancodec

import (
	"encoding/binary"
	"fmt"
)

// scanner walks a Hessian 2.0 stream without building values, checking
// what the decoder trusts: every declared length (string, binary, list,
// class field count) fits in the bytes that remain, nesting stays under a
// depth limit, references and type or class references point at things
// already seen, and exactly one value fills the input. A stream that
// passes cannot make the decoder allocate more than a small multiple of
// its own size, nor recurse without bound; refs can still share or close
// cycles, which the conversion into Go values bounds separately.
type scanner struct {
	b        []byte
	pos      int
	depth    int
	maxDepth int
	refs     int   // lists, maps and objects started: valid ref targets
	types    int   // type names seen in lists and maps
	classes  []int // field counts of the class definitions seen
}

// scanError is a malformed stream, with the offset where it went wrong.
type scanError struct {
	pos int
	msg string
}

func (e *scanError) Error() string {
	return fmt.Sprintf("malformed stream at byte %d: %s", e.pos, e.msg)
}

func (s *scanner) fail(format string, args ...any) error {
	return &scanError{pos: s.pos, msg: fmt.Sprintf(format, args...)}
}

func scan(b []byte, maxDepth int) error {
	s := &scanner{b: b, maxDepth: maxDepth}
	if len(b) == 0 {
		return s.fail("empty input")
	}
	if err := s.value(); err != nil {
		return err
	}
	if s.pos != len(b) {
		return s.fail("%d bytes after the value", len(b)-s.pos)
	}
	return nil
}

func (s *scanner) left() int { return len(s.b) - s.pos }

func (s *scanner) byte() (byte, error) {
	if s.pos >= len(s.b) {
		return 0, s.fail("unexpected end of input")
	}
	c := s.b[s.pos]
	s.pos++
	return c, nil
}

func (s *scanner) skip(n int) error {
	if n < 0 || n > s.left() {
		return s.fail("%d bytes declared, %d left", n, s.left())
	}
	s.pos += n
	return nil
}

func (s *scanner) u16() (int, error) {
	if s.left() < 2 {
		return 0, s.fail("unexpected end of input")
	}
	v := int(binary.BigEndian.Uint16(s.b[s.pos:]))
	s.pos += 2
	return v, nil
}

// count reads an int used as a length or index and checks it against
// the bytes left (each counted item takes at least one byte).
func (s *scanner) count(what string) (int, error) {
	start := s.pos
	c, err := s.byte()
	if err != nil {
		return 0, err
	}
	var v int64
	switch {
	case c >= 0x80 && c <= 0xbf:
		v = int64(c) - 0x90
	case c >= 0xc0 && c <= 0xcf:
		b, err := s.byte()
		if err != nil {
			return 0, err
		}
		v = (int64(c)-0xc8)<<8 | int64(b)
	case c >= 0xd0 && c <= 0xd7:
		if s.left() < 2 {
			return 0, s.fail("unexpected end of input")
		}
		v = (int64(c)-0xd4)<<16 | int64(s.b[s.pos])<<8 | int64(s.b[s.pos+1])
		s.pos += 2
	case c == 'I':
		if s.left() < 4 {
			return 0, s.fail("unexpected end of input")
		}
		v = int64(int32(binary.BigEndian.Uint32(s.b[s.pos:])))
		s.pos += 4
	default:
		s.pos = start
		return 0, s.fail("%s: expected an int, found byte 0x%02x", what, c)
	}
	if v < 0 {
		s.pos = start
		return 0, s.fail("%s: negative (%d)", what, v)
	}
	return int(v), nil
}

// chars skips n UTF-8 characters (UTF-16 units, as Hessian counts them).
func (s *scanner) chars(n int) error {
	if n > s.left() {
		return s.fail("string of %d characters declared, %d bytes left", n, s.left())
	}
	for n > 0 {
		c, err := s.byte()
		if err != nil {
			return err
		}
		switch {
		case c < 0x80:
			n--
		case c&0xe0 == 0xc0:
			err, n = s.skip(1), n-1
		case c&0xf0 == 0xe0:
			err, n = s.skip(2), n-1
		case c&0xf8 == 0xf0:
			err, n = s.skip(3), n-2 // a surrogate pair
		default:
			return s.fail("invalid UTF-8 lead byte 0x%02x in a string", c)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// str reads a string value (possibly chunked).
func (s *scanner) str(what string) error {
	for {
		c, err := s.byte()
		if err != nil {
			return err
		}
		var n int
		final := true
		switch {
		case c <= 0x1f:
			n = int(c)
		case c >= 0x30 && c <= 0x33:
			b, err := s.byte()
			if err != nil {
				return err
			}
			n = int(c-0x30)<<8 | int(b)
		case c == 'S' || c == 'R':
			if n, err = s.u16(); err != nil {
				return err
			}
			final = c == 'S'
		default:
			s.pos--
			return s.fail("%s: expected a string, found byte 0x%02x", what, c)
		}
		if err := s.chars(n); err != nil {
			return err
		}
		if final {
			return nil
		}
	}
}

// typ reads a list or map type: a type name or a reference to one.
func (s *scanner) typ() error {
	if s.pos < len(s.b) && (s.b[s.pos] <= 0x1f || (s.b[s.pos] >= 0x30 && s.b[s.pos] <= 0x33) || s.b[s.pos] == 'S' || s.b[s.pos] == 'R') {
		if err := s.str("type"); err != nil {
			return err
		}
		s.types++
		return nil
	}
	i, err := s.count("type reference")
	if err != nil {
		return err
	}
	if i >= s.types {
		return s.fail("type reference %d, only %d types defined", i, s.types)
	}
	return nil
}

func (s *scanner) enter() error {
	s.depth++
	if s.depth > s.maxDepth {
		return s.fail("nesting deeper than %d", s.maxDepth)
	}
	return nil
}

// values reads n values.
func (s *scanner) values(n int) error {
	if n > s.left() {
		return s.fail("%d values declared, %d bytes left", n, s.left())
	}
	for range n {
		if err := s.value(); err != nil {
			return err
		}
	}
	return nil
}

// until reads values up to the 'Z' terminator; pairs reads them two by
// two (a map).
func (s *scanner) until(pairs bool) error {
	for {
		if s.pos >= len(s.b) {
			return s.fail("unterminated list or map (no 'Z')")
		}
		if s.b[s.pos] == 'Z' {
			s.pos++
			return nil
		}
		if err := s.value(); err != nil {
			return err
		}
		if pairs {
			if s.pos < len(s.b) && s.b[s.pos] == 'Z' {
				return s.fail("map key without a value")
			}
			if err := s.value(); err != nil {
				return err
			}
		}
	}
}

// maxClassRun bounds class definitions in a row: a definition precedes
// the object that uses it, and decoders read the two recursively.
const maxClassRun = 64

func (s *scanner) value() error {
	start := s.pos
	c, err := s.byte()
	if err != nil {
		return err
	}
	for run := 0; c == 'C'; run++ {
		if run == maxClassRun {
			return s.fail("more than %d class definitions in a row", maxClassRun)
		}
		if err := s.classDef(); err != nil {
			return err
		}
		start = s.pos
		if c, err = s.byte(); err != nil {
			return err
		}
	}
	switch {
	case c <= 0x1f, c >= 0x30 && c <= 0x33, c == 'S', c == 'R':
		s.pos = start
		return s.str("string")
	case c >= 0x20 && c <= 0x2f:
		return s.skip(int(c - 0x20))
	case c >= 0x34 && c <= 0x37:
		b, err := s.byte()
		if err != nil {
			return err
		}
		return s.skip(int(c-0x34)<<8 | int(b))
	case c == 'A' || c == 'B':
		for {
			n, err := s.u16()
			if err != nil {
				return err
			}
			if err := s.skip(n); err != nil {
				return err
			}
			if c == 'B' {
				return nil
			}
			if c, err = s.byte(); err != nil {
				return err
			}
			if c >= 0x20 && c <= 0x2f {
				return s.skip(int(c - 0x20))
			}
			if c >= 0x34 && c <= 0x37 {
				b, err := s.byte()
				if err != nil {
					return err
				}
				return s.skip(int(c-0x34)<<8 | int(b))
			}
			if c != 'A' && c != 'B' {
				s.pos--
				return s.fail("binary chunk followed by byte 0x%02x", c)
			}
		}
	case c == 'N', c == 'T', c == 'F', c == 0x5b, c == 0x5c,
		c >= 0x80 && c <= 0xbf, c >= 0xd8 && c <= 0xef:
		return nil
	case c >= 0xc0 && c <= 0xcf, c >= 0xf0, c == 0x5d:
		return s.skip(1)
	case c >= 0xd0 && c <= 0xd7, c >= 0x38 && c <= 0x3f, c == 0x5e:
		return s.skip(2)
	case c == 'I', c == 'Y', c == 'K', c == 0x5f:
		return s.skip(4)
	case c == 'L', c == 'D', c == 'J':
		return s.skip(8)
	case c == 'O' || (c >= 0x60 && c <= 0x6f):
		i := int(c) - 0x60
		if c == 'O' {
			if i, err = s.count("class reference"); err != nil {
				return err
			}
		}
		if i >= len(s.classes) {
			return s.fail("object of class %d, only %d classes defined", i, len(s.classes))
		}
		if err := s.enter(); err != nil {
			return err
		}
		s.refs++
		err = s.values(s.classes[i])
		s.depth--
		return err
	case c == 'Q':
		i, err := s.count("reference")
		if err != nil {
			return err
		}
		if i >= s.refs {
			return s.fail("reference %d, only %d lists, maps and objects so far", i, s.refs)
		}
		return nil
	case c == 'U', c == 'V', c == 'W', c == 'X', c >= 0x70 && c <= 0x7f, c == 'H', c == 'M':
		if err := s.enter(); err != nil {
			return err
		}
		s.refs++
		defer func() { s.depth-- }()
		if c == 'U' || c == 'V' || c == 'M' || (c >= 0x70 && c <= 0x77) {
			if err := s.typ(); err != nil {
				return err
			}
		}
		switch {
		case c == 'U' || c == 'W':
			return s.until(false)
		case c == 'H' || c == 'M':
			return s.until(true)
		case c == 'V' || c == 'X':
			n, err := s.count("list length")
			if err != nil {
				return err
			}
			return s.values(n)
		case c >= 0x78:
			return s.values(int(c - 0x78))
		default:
			return s.values(int(c - 0x70))
		}
	}
	s.pos = start
	return s.fail("byte 0x%02x starts no Hessian 2 value", c)
}

// classDef reads a class definition after its 'C'.
func (s *scanner) classDef() error {
	if err := s.str("class name"); err != nil {
		return err
	}
	n, err := s.count("field count")
	if err != nil {
		return err
	}
	if n > s.left() {
		return s.fail("%d fields declared, %d bytes left", n, s.left())
	}
	for range n {
		if err := s.str("field name"); err != nil {
			return err
		}
	}
	s.classes = append(s.classes, n)
	return nil
}
