package compare

import (
	stdjson "encoding/json"
	"reflect"
	"testing"

	"github.com/bytedance/sonic"
	goccy "github.com/goccy/go-json"
	segment "github.com/segmentio/encoding/json"
)

type lib struct {
	name      string
	marshal   func(any) ([]byte, error)
	unmarshal func([]byte, any) error
}

var libs = []lib{
	{"encoding-json", stdjson.Marshal, stdjson.Unmarshal},
	{"goccy-go-json", goccy.Marshal, goccy.Unmarshal},
	{"sonic", sonic.Marshal, sonic.Unmarshal},
	{"segmentio", segment.Marshal, segment.Unmarshal},
}

func cases() []struct {
	name string
	v    any
	new  func() any
} {
	s, m, l := Samples()
	return []struct {
		name string
		v    any
		new  func() any
	}{
		{"128B", s, func() any { return new(Small) }},
		{"1KiB", m, func() any { return new(Medium) }},
		{"64KiB", l, func() any { return new(Large) }},
	}
}

// TestLibsAgree checks every candidate round-trips every message, so the
// benchmark compares libraries doing the same work.
func TestLibsAgree(t *testing.T) {
	for _, l := range libs {
		for _, c := range cases() {
			b, err := l.marshal(c.v)
			if err != nil {
				t.Fatalf("%s %s: %v", l.name, c.name, err)
			}
			t.Logf("%s %s: %d bytes", l.name, c.name, len(b))
			got := c.new()
			if err := l.unmarshal(b, got); err != nil {
				t.Fatalf("%s %s: %v", l.name, c.name, err)
			}
			if !reflect.DeepEqual(got, c.v) {
				t.Errorf("%s %s: round trip differs", l.name, c.name)
			}
		}
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	for _, c := range cases() {
		for _, l := range libs {
			b.Run(c.name+"/"+l.name, func(b *testing.B) {
				data, _ := l.marshal(c.v)
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					data, err := l.marshal(c.v)
					if err != nil {
						b.Fatal(err)
					}
					if err := l.unmarshal(data, c.new()); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
