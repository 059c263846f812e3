package jsoncodec_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"

	jsoncodec "github.com/kiterpc/kite/plugins/codec-json"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Kite-like messages: a small request, a 1 KiB text message and a 64 KiB
// response holding a slice of structs (the shapes measured in compare/).

type Small struct {
	ID     int64    `json:"id"`
	Name   string   `json:"name"`
	Email  string   `json:"email"`
	Active bool     `json:"active"`
	Score  float64  `json:"score"`
	Tags   []string `json:"tags"`
}

type Medium struct {
	ID      int64             `json:"id"`
	TraceID string            `json:"trace_id"`
	Body    string            `json:"body"`
	Labels  map[string]string `json:"labels"`
	Raw     json.RawMessage   `json:"raw,omitempty"`
	Blob    []byte            `json:"blob,omitempty"`
}

type Item struct {
	SKU      string  `json:"sku"`
	Title    string  `json:"title"`
	Price    float64 `json:"price"`
	Quantity int32   `json:"quantity"`
	InStock  bool    `json:"in_stock"`
}

type Large struct {
	Page  int    `json:"page"`
	Total int    `json:"total"`
	Items []Item `json:"items"`
}

func samples() (*Small, *Medium, *Large) {
	s := &Small{ID: 1001, Name: "Ada Lovelace", Email: "ada@example.com", Active: true, Score: 97.25,
		Tags: []string{"admin", "beta"}}
	m := &Medium{ID: 42, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		Body:   strings.Repeat("Kite carries this text payload; ", 28),
		Labels: map[string]string{"zone": "eu-west-1", "env": "prod"}}
	l := &Large{Page: 1, Total: 640}
	for i := range 640 {
		l.Items = append(l.Items, Item{SKU: fmt.Sprintf("SKU-%06d", i), Title: fmt.Sprintf("Item number %d in stock", i),
			Price: float64(i) * 1.25, Quantity: int32(i % 17), InStock: i%3 != 0})
	}
	return s, m, l
}

func TestConformance(t *testing.T) {
	s, m, l := samples()
	for name, c := range map[string]*jsoncodec.Codec{
		"default": jsoncodec.New(),
		"strict":  jsoncodec.NewWithConfig(jsoncodec.Config{DisallowUnknownFields: true, EscapeHTML: true}),
	} {
		t.Run(name, func(t *testing.T) {
			t.Run("Small", func(t *testing.T) {
				spitest.TestCodec(t, c, func() any { return new(Small) }, s, Small{Name: "<&>\u2028", Tags: []string{}}, Small{})
			})
			t.Run("Medium", func(t *testing.T) {
				withRaw := *m
				withRaw.Raw = json.RawMessage(`{"nested":[1,2,3]}`)
				withRaw.Blob = []byte("bytes travel as base64")
				spitest.TestCodec(t, c, func() any { return new(Medium) }, m, &withRaw)
			})
			t.Run("Large", func(t *testing.T) {
				spitest.TestCodec(t, c, func() any { return new(Large) }, l)
			})
			t.Run("Map", func(t *testing.T) {
				spitest.TestCodec(t, c, func() any { return new(map[string]any) },
					map[string]any{"a": 1.5, "b": []any{"x", true, nil}, "c": map[string]any{}})
			})
		})
	}
}

func TestRegistered(t *testing.T) {
	c, err := spi.Default.BuildCodec("json", spi.Config(`{"escape_html":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "json" || c.ID() != spi.CodecJSON {
		t.Errorf("built %s/%d, want json/%d", c.Name(), c.ID(), spi.CodecJSON)
	}
	out, _ := c.Marshal(nil, "<b>")
	if string(out) != `"\u003cb\u003e"` {
		t.Errorf("escape_html: got %s", out)
	}
	if _, err := spi.Default.BuildCodec("json", spi.Config(`{"indent":"  "}`)); err == nil {
		t.Error("an unknown setting was accepted")
	}
}

func TestEncodingMatchesEncodingJSON(t *testing.T) {
	s, m, l := samples()
	c := jsoncodec.New()
	for _, v := range []any{s, m, l, nil, "plain", 12, []byte("raw bytes are base64, as in encoding/json")} {
		got, err := c.Marshal(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(v)
		if string(got) != string(want) {
			t.Errorf("%T: got %s, want %s", v, got, want)
		}
	}
	got, _ := c.Marshal(nil, "<&>")
	if string(got) != `"<&>"` {
		t.Errorf("HTML escaping is on by default: %s", got)
	}
}

func TestStrict(t *testing.T) {
	strict := jsoncodec.NewWithConfig(jsoncodec.Config{DisallowUnknownFields: true})
	var s Small
	err := strict.Unmarshal([]byte(`{"id":1,"nickname":"x"}`), &s)
	if err == nil || !strings.Contains(err.Error(), "nickname") {
		t.Errorf("unknown field: got %v", err)
	}
	if spi.CodeOf(err) != spi.InvalidArgument {
		t.Errorf("want InvalidArgument, got %v", spi.CodeOf(err))
	}
	for _, bad := range []string{`{"id":1} {"id":2}`, `{"id":1`, ``} {
		if err := strict.Unmarshal([]byte(bad), &s); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
	if err := jsoncodec.New().Unmarshal([]byte(`{"id":7,"nickname":"x"}`), &s); err != nil || s.ID != 7 {
		t.Errorf("lenient codec: %v, id %d", err, s.ID)
	}
}

func TestErrors(t *testing.T) {
	c := jsoncodec.New()
	_, err := c.Marshal([]byte("keep"), make(chan int))
	if spi.CodeOf(err) != spi.InvalidArgument || !strings.Contains(err.Error(), "chan int") {
		t.Errorf("Marshal(chan): %v", err)
	}
	var s Small
	err = c.Unmarshal([]byte(`{"id":"seven"}`), &s)
	if spi.CodeOf(err) != spi.InvalidArgument || !strings.Contains(err.Error(), "*jsoncodec_test.Small") {
		t.Errorf("Unmarshal type mismatch: %v", err)
	}
	var typeErr *json.UnmarshalTypeError
	if !errors.As(err, &typeErr) {
		t.Errorf("the encoding/json error is not in the chain: %v", err)
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	s, m, l := samples()
	c := jsoncodec.New()
	for _, tc := range []struct {
		name string
		v    any
		new  func() any
	}{
		{"128B", s, func() any { return new(Small) }},
		{"1KiB", m, func() any { return new(Medium) }},
		{"64KiB", l, func() any { return new(Large) }},
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
