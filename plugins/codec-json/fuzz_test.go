package jsoncodec_test

import (
	"bytes"
	"reflect"
	"testing"

	jsoncodec "github.com/kiterpc/kite/plugins/codec-json"
)

// fuzzMsg has the shapes a request body takes: scalars, nested structs,
// slices, maps, bytes (base64), pointers and an untyped field.
type fuzzMsg struct {
	ID      int64             `json:"id"`
	Name    string            `json:"name"`
	Score   float64           `json:"score"`
	Active  bool              `json:"active"`
	Tags    []string          `json:"tags"`
	Labels  map[string]string `json:"labels"`
	Blob    []byte            `json:"blob"`
	Child   *fuzzMsg          `json:"child"`
	Items   []fuzzItem        `json:"items"`
	Any     any               `json:"any"`
	Counter uint8             `json:"counter"`
}

type fuzzItem struct {
	SKU   string  `json:"sku"`
	Price float64 `json:"price"`
	Qty   int32   `json:"qty"`
}

// FuzzUnmarshal feeds arbitrary bytes to the codec's Unmarshal, the path
// every request body from the network takes. It must never panic; what
// it accepts must survive a Marshal/Unmarshal round trip unchanged; the
// decoded value must not alias the input buffer (the caller reuses it);
// and the strict codec must accept only what the lenient one accepts,
// decoding it identically.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{
		`{"id":1001,"name":"Ada","score":97.25,"active":true,"tags":["a","b"],"labels":{"zone":"eu"},"blob":"AAEC","child":{"id":2},"items":[{"sku":"X","price":1.5,"qty":3}],"any":[1,"x",null,{"k":false}]}`,
		`{"id":"1"}`, `{"counter":256}`, `{"unknown":1}`, `[1,2,3]`, `"str\u00e9\ud83d\ude00"`, `null`, `1e400`,
		`{"name":"\xff\xfe"}`, `{"a":{"b":{"c":{"d":[[[[{}]]]]}}}}`, `{"blob":"not base64!"}`, `  {"id":1}  `, `{"id":1}{"id":2}`,
	} {
		f.Add([]byte(s))
	}
	lenient := jsoncodec.New()
	strict := jsoncodec.NewWithConfig(jsoncodec.Config{DisallowUnknownFields: true})
	f.Fuzz(func(t *testing.T, data []byte) {
		// Untyped target: every valid JSON value decodes.
		var v any
		if err := lenient.Unmarshal(data, &v); err == nil {
			roundTrip(t, lenient, v, func() any { return new(any) })
		}

		in := append([]byte(nil), data...)
		var m fuzzMsg
		lerr := lenient.Unmarshal(in, &m)
		if lerr == nil {
			before, err := lenient.Marshal(nil, &m)
			if err != nil {
				t.Fatalf("decoded message does not encode: %v", err)
			}
			// Scribble over the input: a decoded value that aliased it
			// would change.
			for i := range in {
				in[i] = 'x'
			}
			after, err := lenient.Marshal(nil, &m)
			if err != nil || !bytes.Equal(before, after) {
				t.Fatalf("decoded value aliases the input buffer:\nbefore %s\nafter  %s", before, after)
			}
			roundTrip(t, lenient, &m, func() any { return new(fuzzMsg) })
		}

		var sm fuzzMsg
		if err := strict.Unmarshal(data, &sm); err == nil {
			if lerr != nil {
				t.Fatalf("strict codec accepted what the lenient one refused (%v): %q", lerr, data)
			}
			// JSON has no NaN literal, so DeepEqual is a sound comparison.
			if !reflect.DeepEqual(sm, m) {
				t.Fatalf("strict and lenient decodings differ:\nstrict  %#v\nlenient %#v", sm, m)
			}
		}
	})
}

// roundTrip encodes v, decodes the result into a fresh value and checks
// the two encodings are identical (encoding/json output is canonical for
// a given value, so equal encodings mean equal values).
func roundTrip(t *testing.T, c *jsoncodec.Codec, v any, fresh func() any) {
	t.Helper()
	enc, err := c.Marshal(nil, v)
	if err != nil {
		t.Fatalf("decoded value %#v does not encode: %v", v, err)
	}
	w := fresh()
	if err := c.Unmarshal(enc, w); err != nil {
		t.Fatalf("codec output does not decode: %v\n%s", err, enc)
	}
	enc2, err := c.Marshal(nil, w)
	if err != nil {
		t.Fatalf("re-decoded value does not encode: %v", err)
	}
	if !bytes.Equal(enc, enc2) {
		t.Fatalf("round trip changed the value:\nfirst  %s\nsecond %s", enc, enc2)
	}
}
