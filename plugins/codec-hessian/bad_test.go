package hessiancodec_test

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"

	hessiancodec "github.com/kiterpc/kite/plugins/codec-hessian"
	"github.com/kiterpc/kite/spi"
)

// refBomb is a list of n lists, each after the first holding the one
// before it twice by reference: about 5n bytes describing 2^(n-1)
// leaves once the references are followed.
func refBomb(n int) []byte {
	b := []byte{'X', byte(0x90 + n), 0x79, 0x90} // the outer list (ref 0); list 1 = [0]
	for i := 1; i < n; i++ {
		b = append(b, 0x7a, 'Q', byte(0x90+i), 'Q', byte(0x90+i)) // list i+1 = [list i, list i]
	}
	return b
}

func TestBadInput(t *testing.T) {
	c := hessiancodec.New()
	cyclicList := []byte{0x79, 'Q', 0x90}               // a list containing itself
	cyclicMap := []byte{'H', 0x01, 'a', 'Q', 0x90, 'Z'} // a map containing itself
	deep := append(bytes.Repeat([]byte{0x79}, 1000), 'N')
	for _, c2 := range []struct {
		name string
		data []byte
		into func() any
		want string
	}{
		{"empty", nil, func() any { return new(any) }, "empty input"},
		{"huge string length", []byte{'S', 0xff, 0xff, 'a'}, func() any { return new(string) }, "65535 characters declared, 1 bytes left"},
		{"huge binary length", []byte{'B', 0xff, 0xff, 1, 2}, func() any { return new([]byte) }, "65535 bytes declared, 2 left"},
		{"huge list length", []byte{'X', 'I', 0x7f, 0xff, 0xff, 0xff, 'N'}, func() any { return new([]any) }, "2147483647 values declared"},
		{"huge typed list", []byte{'V', 0x04, '[', 'i', 'n', 't', 'I', 0x10, 0, 0, 0, 0x90}, func() any { return new([]int32) }, "268435456 values declared"},
		{"huge field count", []byte{'C', 0x01, 'X', 'I', 0x7f, 0, 0, 0, 0x01, 'a'}, func() any { return new(any) }, "fields declared"},
		{"negative length", []byte{'X', 0x8f}, func() any { return new([]any) }, "negative"},
		{"ref ahead", []byte{'Q', 0x95}, func() any { return new(any) }, "reference 5, only 0"},
		{"type ref ahead", []byte{'V', 0x93, 0x90}, func() any { return new(any) }, "type reference 3"},
		{"object of no class", []byte{0x62}, func() any { return new(any) }, "object of class 2, only 0"},
		{"class definition run", bytes.Repeat([]byte{'C', 0x01, 'X', 0x90}, 100), func() any { return new(any) }, "class definitions in a row"},
		{"deep nesting", deep, func() any { return new(any) }, "nesting deeper than 64"},
		{"unterminated map", []byte{'H', 0x01, 'a', 0x90}, func() any { return new(any) }, "unterminated"},
		{"trailing bytes", []byte{0x90, 0x90}, func() any { return new(int32) }, "1 bytes after the value"},
		{"reserved byte", []byte{0x40}, func() any { return new(any) }, "starts no Hessian 2 value"},
		{"ref bomb", refBomb(40), func() any { return new(any) }, "expand beyond the input's size"},
		{"cyclic list", cyclicList, func() any { return new(any) }, ""},
		{"cyclic map", cyclicMap, func() any { return new(map[string]any) }, ""},
		{"wrong type", []byte{0x05, 'h', 'e', 'l', 'l', 'o'}, func() any { return new(int64) }, "does not fit Go int64"},
		{"overflow", []byte{'L', 0, 0, 0, 1, 0, 0, 0, 0}, func() any { return new(int32) }, "overflows int32"},
	} {
		t.Run(c2.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := c.Unmarshal(c2.data, c2.into())
			runtime.ReadMemStats(&after)
			var se *spi.Error
			if !errors.As(err, &se) || se.Code != spi.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			if !strings.Contains(err.Error(), c2.want) {
				t.Fatalf("error %q does not say %q", err, c2.want)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
				t.Fatalf("decoding %d bytes allocated %d bytes", len(c2.data), grew)
			}
		})
	}
}

func TestEncodeRefusals(t *testing.T) {
	c := hessiancodec.New()
	loop := &User{Name: "loop"}
	loop.Friend = loop
	m := map[string]any{}
	m["self"] = m
	type Anonymous struct{ X int }
	deep := any(nil)
	for range 100 {
		deep = []any{deep}
	}
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"pointer cycle", loop, "contains itself"},
		{"map cycle", m, "contains itself"},
		{"struct without class", Anonymous{1}, "has no Java class"},
		{"channel", make(chan int), "has no Hessian form"},
		{"uint64 past int64", uint64(1) << 63, "does not fit a Java long"},
		{"deep", deep, "nesting deeper than 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.Marshal([]byte("keep"), tc.v)
			if spi.CodeOf(err) != spi.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want InvalidArgument saying %q", err, tc.want)
			}
			if string(out) != "keep" {
				t.Fatalf("dst changed to %q", out)
			}
		})
	}
	// A shared (not cyclic) pointer is fine; the encoder writes it out
	// each time.
	shared := &User{Name: "s"}
	b, err := c.Marshal(nil, []*User{shared, shared})
	if err != nil {
		t.Fatal(err)
	}
	var got []*User
	if err := c.Unmarshal(b, &got); err != nil || len(got) != 2 || got[0].Name != "s" || got[1].Name != "s" {
		t.Fatalf("shared pointer: %v %+v", err, got)
	}
	// Registering a refused type later makes it encodable.
	type Late struct{ X int32 }
	if _, err := c.Marshal(nil, Late{1}); err == nil {
		t.Fatal("a struct without a class encoded")
	}
	if err := hessiancodec.Register("kite.test.Late", Late{}); err != nil {
		t.Fatal(err)
	}
	if b, err := c.Marshal(nil, Late{7}); err != nil {
		t.Fatalf("after Register: %v", err)
	} else if late := (Late{}); c.Unmarshal(b, &late) != nil || late.X != 7 {
		t.Fatalf("after Register, round trip gave %+v", late)
	}
	if err := hessiancodec.Register("kite.interop.User", Order{}); err == nil {
		t.Fatal("binding a second Go type to a bound Java class was accepted")
	}
}
