package protocodec_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	protocodec "github.com/kiterpc/kite/plugins/codec-proto"
	"github.com/kiterpc/kite/plugins/codec-proto/internal/testpb"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func samples() (*testpb.Small, *testpb.Medium, *testpb.Large) {
	s := &testpb.Small{Id: 1001, Name: "Ada Lovelace", Email: "ada@example.com", Active: true, Score: 97.25,
		Tags: []string{"admin", "beta"}}
	m := &testpb.Medium{Id: 42, TraceId: "4bf92f3577b34da6a3ce929d0e0e4736",
		Body:   strings.Repeat("Kite carries this text payload; ", 28),
		Labels: map[string]string{"zone": "eu-west-1", "env": "prod"},
		Blob:   []byte("bytes fields must be copied out of the input")}
	l := &testpb.Large{Page: 1, Total: 640}
	for i := range 640 {
		l.Items = append(l.Items, &testpb.Item{Sku: fmt.Sprintf("SKU-%06d", i), Title: fmt.Sprintf("Item number %d in stock", i),
			Price: float64(i) * 1.25, Quantity: int32(i % 17), InStock: i%3 != 0})
	}
	return s, m, l
}

func protoEqual(want, got any) bool {
	w, ok1 := want.(proto.Message)
	g, ok2 := got.(proto.Message)
	if v, ok := got.(*vtSmall); ok {
		g, ok2 = v.Small, true
	}
	if v, ok := want.(*vtSmall); ok {
		w, ok1 = v.Small, true
	}
	return ok1 && ok2 && proto.Equal(w, g)
}

func suite(c spi.Codec, newValue func() any, samples ...any) spitest.CodecSuite {
	return spitest.CodecSuite{Codec: c, New: newValue, Samples: samples, Equal: protoEqual}
}

func TestConformance(t *testing.T) {
	s, m, l := samples()
	for name, c := range map[string]*protocodec.Codec{
		"default":       protocodec.New(),
		"deterministic": protocodec.NewWithConfig(protocodec.Config{Deterministic: true, DiscardUnknown: true}),
	} {
		t.Run(name, func(t *testing.T) {
			t.Run("Small", suite(c, func() any { return new(testpb.Small) }, s, &testpb.Small{}).Run)
			t.Run("Medium", suite(c, func() any { return new(testpb.Medium) }, m).Run)
			t.Run("Large", suite(c, func() any { return new(testpb.Large) }, l).Run)
			t.Run("WellKnown", suite(c, func() any { return new(structpb.Struct) }, mustStruct(t)).Run)
			t.Run("Wrapper", suite(c, func() any { return new(wrapperspb.StringValue) }, wrapperspb.String("kite")).Run)
			t.Run("VT", suite(c, func() any { return &vtSmall{Small: new(testpb.Small)} }, &vtSmall{Small: s}).Run)
		})
	}
}

func mustStruct(t *testing.T) *structpb.Struct {
	st, err := structpb.NewStruct(map[string]any{"user": "ada", "id": 1001.0, "tags": []any{"a", true, nil}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// vtSmall is a message with vtprotobuf-style methods. They delegate to
// the generic runtime but count their calls, so the test can see the
// codec took the fast path.
type vtSmall struct {
	*testpb.Small
}

var vtMarshals, vtUnmarshals atomic.Int64

func (m *vtSmall) SizeVT() int { return proto.Size(m.Small) }

func (m *vtSmall) MarshalToSizedBufferVT(b []byte) (int, error) {
	vtMarshals.Add(1)
	enc, err := proto.Marshal(m.Small)
	if err != nil {
		return 0, err
	}
	return copy(b[len(b)-len(enc):], enc), nil
}

func (m *vtSmall) UnmarshalVT(b []byte) error {
	vtUnmarshals.Add(1)
	return proto.UnmarshalOptions{Merge: true}.Unmarshal(b, m.Small)
}

func TestVTFastPath(t *testing.T) {
	s, _, _ := samples()
	c := protocodec.New()
	m0, u0 := vtMarshals.Load(), vtUnmarshals.Load()
	b, err := c.Marshal([]byte("pre"), &vtSmall{Small: s})
	if err != nil {
		t.Fatal(err)
	}
	got := &vtSmall{Small: &testpb.Small{Name: "stale", Tags: []string{"stale"}}}
	if err := c.Unmarshal(b[3:], got); err != nil {
		t.Fatal(err)
	}
	if vtMarshals.Load() != m0+1 || vtUnmarshals.Load() != u0+1 {
		t.Errorf("the vtprotobuf methods were not used")
	}
	if !proto.Equal(got.Small, s) {
		t.Errorf("fast path round trip: got %v (stale fields must be reset)", got.Small)
	}
	want, _ := proto.Marshal(s)
	if string(b[3:]) != string(want) || string(b[:3]) != "pre" {
		t.Errorf("fast path encoding differs from proto.Marshal")
	}
}

func TestNotAMessage(t *testing.T) {
	c := protocodec.New()
	type plain struct{ ID int }
	_, err := c.Marshal(nil, plain{ID: 1})
	if spi.CodeOf(err) != spi.InvalidArgument || !strings.Contains(err.Error(), "protocodec_test.plain is not a protobuf message") {
		t.Errorf("Marshal(plain struct): %v", err)
	}
	if err := c.Unmarshal([]byte{0x08, 0x01}, &plain{}); spi.CodeOf(err) != spi.InvalidArgument {
		t.Errorf("Unmarshal into plain struct: %v", err)
	}
	var nilMsg *testpb.Small
	if err := c.Unmarshal([]byte{0x08, 0x01}, nilMsg); spi.CodeOf(err) != spi.InvalidArgument {
		t.Errorf("Unmarshal into nil message: %v", err)
	}
	var nilVT *vtSmall
	if err := c.Unmarshal([]byte{0x08, 0x01}, nilVT); spi.CodeOf(err) != spi.InvalidArgument {
		t.Errorf("Unmarshal into nil vt message: %v", err)
	}
}

func TestDeterministic(t *testing.T) {
	c := protocodec.NewWithConfig(protocodec.Config{Deterministic: true})
	m := &testpb.Medium{Labels: map[string]string{}}
	for i := range 50 {
		m.Labels[fmt.Sprint("k", i)] = "v"
	}
	first, _ := c.Marshal(nil, m)
	for range 20 {
		again, _ := c.Marshal(nil, m)
		if string(again) != string(first) {
			t.Fatal("deterministic encodings of one message differ")
		}
	}
}

func TestRegistered(t *testing.T) {
	c, err := spi.Default.BuildCodec("proto", spi.Config(`{"deterministic":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "proto" || c.ID() != spi.CodecProto {
		t.Errorf("built %s/%d, want proto/%d", c.Name(), c.ID(), spi.CodecProto)
	}
	if _, err := spi.Default.BuildCodec("proto", spi.Config(`{"strict":true}`)); err == nil {
		t.Error("an unknown setting was accepted")
	}
}

func TestDecodeErrorKeepsCause(t *testing.T) {
	err := protocodec.New().Unmarshal([]byte{0x0a, 0xff, 0xff, 0xff, 0x0f}, new(testpb.Small))
	if spi.CodeOf(err) != spi.InvalidArgument {
		t.Fatalf("want InvalidArgument, got %v", err)
	}
	var kerr *spi.Error
	if !errors.As(err, &kerr) || kerr.Cause == nil {
		t.Errorf("the protobuf error is not kept as the cause: %#v", err)
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	s, m, l := samples()
	c := protocodec.New()
	for _, tc := range []struct {
		name string
		v    proto.Message
		new  func() any
	}{
		{"128B", s, func() any { return new(testpb.Small) }},
		{"1KiB", m, func() any { return new(testpb.Medium) }},
		{"64KiB", l, func() any { return new(testpb.Large) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			buf, _ := c.Marshal(nil, tc.v)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = c.Marshal(buf[:0], tc.v); err != nil {
					b.Fatal(err)
				}
				if err := c.Unmarshal(buf, tc.new()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
