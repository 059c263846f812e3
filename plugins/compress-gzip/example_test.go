package gzip_test

import (
	"bytes"
	"fmt"

	gzip "github.com/kiterpc/kite/plugins/compress-gzip"
)

func Example() {
	c, err := gzip.NewWithConfig(gzip.Config{Level: gzip.LevelFastest})
	if err != nil {
		panic(err)
	}
	body := bytes.Repeat([]byte("kite "), 100)
	z, _ := c.Compress(nil, body)
	out, err := c.Decompress(nil, z, 4<<20)
	fmt.Println(len(out), len(z) < len(body)/10, z[0] == 0x1f && z[1] == 0x8b, err)
	_, err = c.Decompress(nil, z, 100)
	fmt.Println(err)
	// Output:
	// 500 true true <nil>
	// kite: ResourceExhausted: gzip: body decompresses to more than the limit of 100 bytes
}
