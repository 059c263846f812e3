package hessiancodec_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	hessiancodec "github.com/kiterpc/kite/plugins/codec-hessian"
	"github.com/kiterpc/kite/spi"
)

// FuzzUnmarshal feeds arbitrary bytes to Unmarshal, the path every
// request body from the network takes, into an untyped value, a bound
// struct and a map. It must never panic, crash or run away (cycles and
// reference bombs included): anything refused is an InvalidArgument
// *spi.Error, and what is accepted into an untyped value encodes again (unless it is
// a cycle, which Java writes and this codec refuses to encode).
func FuzzUnmarshal(f *testing.F) {
	c := hessiancodec.New()
	for _, v := range []any{
		&User{Name: "ada", Age: 3, Tags: []string{"x"}, Attrs: map[string]string{"k": "v"}, Avatar: []byte{1}, Friend: &User{Name: "b"}},
		map[string]any{"a": int64(1), "b": []any{"x", 2.5, nil, true}},
		Order{SKU: "s", Lines: []Line{{Note: "n", N: 1}}},
		[]any{int32(1), "two", []byte("3")},
	} {
		b, err := c.Marshal(nil, v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// What Java writes (committed next to the Java program).
	if files, _ := filepath.Glob("testdata/java/*.bin"); len(files) > 0 {
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add(refBomb(30))
	f.Add([]byte{0x79, 'Q', 0x90})
	f.Add([]byte{'S', 0xff, 0xff, 'a'})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, into := range []any{new(any), new(User), new(map[string]any), new([]*User)} {
			err := c.Unmarshal(data, into)
			if err != nil {
				var se *spi.Error
				if !errors.As(err, &se) || se.Code != spi.InvalidArgument {
					t.Fatalf("refusal %v is not InvalidArgument", err)
				}
				continue
			}
			if v, ok := into.(*any); ok {
				// Cycles decode (Java writes back-references) but this
				// codec refuses to encode them.
				if _, err := c.Marshal(nil, *v); err != nil && !strings.Contains(err.Error(), "contains itself") {
					t.Fatalf("accepted %q decodes to %#v, which does not encode: %v", data, *v, err)
				}
			}
		}
	})
}
