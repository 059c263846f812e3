package spitest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/kiterpc/kite/spi"
)

// TestCodec runs the conformance suite for spi.Codec against c.
//
// newValue returns a fresh pointer to decode into (for example
// func() any { return new(User) }); samples are values to encode, each of
// a type whose decoding lands in what newValue returns. A decoded value
// is compared with its sample by reflect.DeepEqual after dereferencing
// one level of pointer on both sides, so a sample may be a User or a
// *User. Codecs whose values cannot be compared that way (protobuf
// messages carry internal state) use CodecSuite with an Equal function.
//
// See CodecSuite for what is checked.
func TestCodec(t *testing.T, c spi.Codec, newValue func() any, samples ...any) {
	t.Helper()
	CodecSuite{Codec: c, New: newValue, Samples: samples}.Run(t)
}

// CodecSuite is TestCodec with every knob exposed.
//
// The contract checked, beyond the interface's comments:
//   - Name is non-empty and ID stable across calls.
//   - Every sample survives Marshal then Unmarshal (round trip).
//   - Marshal appends: the bytes already in dst are kept untouched, both
//     when dst has spare capacity and when it has none, and the appended
//     encoding decodes to the sample.
//   - Unmarshal does not retain its input: overwriting the buffer after
//     Unmarshal returns leaves the decoded value unchanged (the caller
//     reuses frame buffers).
//   - The codec is safe for concurrent use: several goroutines encode and
//     decode at once (run the suite under -race to make this count).
//   - Malformed input gets an error, never a panic: Garbage must be
//     rejected; random bytes and truncated or bit-flipped encodings of the
//     samples may decode or fail, but must not panic.
//   - Values no codec can encode (a channel, a func) and decoding into
//     nil or a non-pointer get an error, never a panic.
type CodecSuite struct {
	Codec spi.Codec
	// New returns a fresh pointer to decode a sample into.
	New func() any
	// Samples are the values to round-trip. At least one is required.
	Samples []any
	// Equal reports whether got (from New, after Unmarshal) holds the
	// same message as want (a sample). Nil means reflect.DeepEqual after
	// dereferencing one level of pointer on each side.
	Equal func(want, got any) bool
	// Garbage are inputs Unmarshal must reject with an error. Nil means
	// DefaultCodecGarbage.
	Garbage [][]byte
}

// DefaultCodecGarbage are inputs that no sensible codec decodes: an
// over-long varint (invalid in protobuf, and not JSON), a length prefix
// that runs past the end of the input, and a lone high byte. Codecs for
// which one of them is a valid message set CodecSuite.Garbage.
var DefaultCodecGarbage = [][]byte{
	{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	{0x0a, 0xff, 0xff, 0xff, 0x0f, 'k', 'i', 't', 'e'},
	{0xff},
}

// Run runs the suite as subtests of t.
func (s CodecSuite) Run(t *testing.T) {
	t.Helper()
	if s.Codec == nil {
		t.Fatal("spitest: CodecSuite needs a Codec")
	}
	if s.New == nil || len(s.Samples) == 0 {
		t.Fatal("spitest: CodecSuite needs New and at least one sample")
	}
	if s.Equal == nil {
		s.Equal = derefEqual
	}
	if s.Garbage == nil {
		s.Garbage = DefaultCodecGarbage
	}
	t.Run("Identity", s.testIdentity)
	t.Run("RoundTrip", s.testRoundTrip)
	t.Run("AppendsToDst", s.testAppend)
	t.Run("UnmarshalDoesNotRetainInput", s.testNoRetain)
	t.Run("Concurrent", s.testConcurrent)
	t.Run("Garbage", s.testGarbage)
	t.Run("Unencodable", s.testUnencodable)
}

func (s CodecSuite) testIdentity(t *testing.T) {
	c := s.Codec
	if c.Name() == "" {
		t.Error("Name() is empty")
	}
	if name, id := c.Name(), c.ID(); c.Name() != name || c.ID() != id {
		t.Error("Name() or ID() changes between calls")
	}
}

// decode unmarshals data into a fresh value and compares it with want.
func (s CodecSuite) decodeAndCompare(data []byte, want any) error {
	got := s.New()
	if err := s.Codec.Unmarshal(data, got); err != nil {
		return fmt.Errorf("Unmarshal(%d bytes) of a %T: %v", len(data), want, err)
	}
	if !s.Equal(want, got) {
		return fmt.Errorf("round trip of %T changed it:\nwant %+v\n got %+v\nwire %q", want, want, got, clip(data))
	}
	return nil
}

func (s CodecSuite) testRoundTrip(t *testing.T) {
	for i, v := range s.Samples {
		data, err := s.Codec.Marshal(nil, v)
		if err != nil {
			t.Errorf("sample %d: Marshal(nil, %T): %v", i, v, err)
			continue
		}
		if err := s.decodeAndCompare(data, v); err != nil {
			t.Errorf("sample %d: %v", i, err)
		}
		// A second encoding must not depend on the first (no state kept
		// in the codec between calls).
		again, err := s.Codec.Marshal(nil, v)
		if err != nil {
			t.Errorf("sample %d: second Marshal: %v", i, err)
			continue
		}
		if err := s.decodeAndCompare(again, v); err != nil {
			t.Errorf("sample %d (second encoding): %v", i, err)
		}
	}
}

func (s CodecSuite) testAppend(t *testing.T) {
	prefix := []byte("kite-prefix\x00\xff")
	for i, v := range s.Samples {
		// Spare capacity: the codec may write in place after len(dst).
		roomy := make([]byte, len(prefix), len(prefix)+4096)
		copy(roomy, prefix)
		// No capacity: the codec must grow into a new array and copy.
		tight := bytes.Clone(prefix)
		tight = tight[:len(tight):len(tight)]
		for _, dst := range [][]byte{roomy, tight} {
			out, err := s.Codec.Marshal(dst, v)
			if err != nil {
				t.Errorf("sample %d: Marshal(dst with %d bytes, cap %d): %v", i, len(dst), cap(dst), err)
				continue
			}
			if len(out) < len(prefix) || !bytes.Equal(out[:len(prefix)], prefix) {
				t.Errorf("sample %d: Marshal clobbered dst: result starts %q, want prefix %q", i, clip(out), prefix)
				continue
			}
			if !bytes.Equal(dst, prefix) {
				t.Errorf("sample %d: Marshal wrote into dst[:len(dst)]: now %q", i, dst)
			}
			if err := s.decodeAndCompare(out[len(prefix):], v); err != nil {
				t.Errorf("sample %d: appended encoding: %v", i, err)
			}
		}
	}
}

func (s CodecSuite) testNoRetain(t *testing.T) {
	for i, v := range s.Samples {
		data, err := s.Codec.Marshal(nil, v)
		if err != nil {
			t.Fatalf("sample %d: Marshal: %v", i, err)
		}
		got := s.New()
		if err := s.Codec.Unmarshal(data, got); err != nil {
			t.Errorf("sample %d: Unmarshal: %v", i, err)
			continue
		}
		// Reuse the buffer as a transport would: every byte changes.
		for j := range data {
			data[j] = ^data[j]
		}
		if !s.Equal(v, got) {
			t.Errorf("sample %d: decoded %T changed when its input buffer was overwritten: Unmarshal retained the input\nwant %+v\n got %+v", i, v, v, got)
		}
	}
}

func (s CodecSuite) testConcurrent(t *testing.T) {
	const workers, rounds = 8, 25
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var buf []byte
			for r := range rounds {
				v := s.Samples[(w+r)%len(s.Samples)]
				var err error
				buf, err = s.Codec.Marshal(buf[:0], v)
				if err != nil {
					errs <- fmt.Errorf("worker %d: Marshal: %v", w, err)
					return
				}
				if err := s.decodeAndCompare(buf, v); err != nil {
					errs <- fmt.Errorf("worker %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func (s CodecSuite) testGarbage(t *testing.T) {
	for i, g := range s.Garbage {
		err := s.unmarshalNoPanic(g)
		if err == nil {
			t.Errorf("garbage %d (%q): Unmarshal returned no error", i, g)
		} else if _, panicked := err.(panicError); panicked {
			t.Errorf("garbage %d (%q): %v", i, g, err)
		}
	}
	// Inputs that may or may not decode, but must never panic: random
	// bytes, every truncation of each sample's encoding, and bit flips.
	rng := rand.New(rand.NewPCG(1, 2))
	var inputs [][]byte
	inputs = append(inputs, nil, []byte{})
	for range 64 {
		b := make([]byte, rng.IntN(64))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		inputs = append(inputs, b)
	}
	for _, v := range s.Samples {
		data, err := s.Codec.Marshal(nil, v)
		if err != nil {
			t.Fatalf("Marshal(%T): %v", v, err)
		}
		step := max(1, len(data)/64) // bound the work on large samples
		for n := 0; n < len(data); n += step {
			inputs = append(inputs, bytes.Clone(data[:n]))
		}
		for range 32 {
			if len(data) == 0 {
				break
			}
			b := bytes.Clone(data)
			b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
			inputs = append(inputs, b)
		}
	}
	for _, in := range inputs {
		if err := s.unmarshalNoPanic(in); err != nil {
			if _, panicked := err.(panicError); panicked {
				t.Errorf("Unmarshal(%q): %v", clip(in), err)
			}
		}
	}
}

func (s CodecSuite) testUnencodable(t *testing.T) {
	for _, v := range []any{make(chan int), func() {}} {
		out, err := marshalNoPanic(s.Codec, v)
		if err == nil {
			t.Errorf("Marshal(%T) returned %q and no error", v, clip(out))
		} else if _, panicked := err.(panicError); panicked {
			t.Errorf("Marshal(%T): %v", v, err)
		}
	}
	data, err := s.Codec.Marshal(nil, s.Samples[0])
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var notPointer struct{ X int }
	for _, target := range []any{nil, notPointer} {
		err := s.unmarshalInto(data, target)
		if err == nil {
			t.Errorf("Unmarshal into %#v returned no error", target)
		} else if _, panicked := err.(panicError); panicked {
			t.Errorf("Unmarshal into %#v: %v", target, err)
		}
	}
}

// panicError reports a recovered panic, which the contract forbids.
type panicError struct{ v any }

func (p panicError) Error() string { return fmt.Sprintf("panicked: %v", p.v) }

func (s CodecSuite) unmarshalNoPanic(data []byte) error {
	return s.unmarshalInto(data, s.New())
}

func (s CodecSuite) unmarshalInto(data []byte, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError{p}
		}
	}()
	return s.Codec.Unmarshal(data, v)
}

func marshalNoPanic(c spi.Codec, v any) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError{p}
		}
	}()
	return c.Marshal(nil, v)
}

func derefEqual(want, got any) bool {
	return reflect.DeepEqual(deref(want), deref(got))
}

func deref(v any) any {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		return rv.Elem().Interface()
	}
	return v
}

// clip shortens b for error messages.
func clip(b []byte) []byte {
	if len(b) > 96 {
		return b[:96]
	}
	return b
}
