package snappy_test

import (
	"bytes"
	"fmt"

	snappy "github.com/kiterpc/kite/plugins/compress-snappy"
)

func Example() {
	c := snappy.New()
	body := bytes.Repeat([]byte("kite "), 100)
	z, _ := c.Compress(nil, body)
	out, err := c.Decompress(nil, z, 4<<20)
	fmt.Println(len(body), "->", len(z), "->", len(out), err)
	_, err = c.Decompress(nil, z, 100)
	fmt.Println(err)
	// Output:
	// 500 -> 32 -> 500 <nil>
	// kite: ResourceExhausted: snappy: body decompresses to 500 bytes, over the limit of 100
}
