package zstd_test

import (
	"bytes"
	"fmt"

	zstd "github.com/kiterpc/kite/plugins/compress-zstd"
)

func Example() {
	c, err := zstd.NewWithConfig(zstd.Config{Level: zstd.LevelFastest})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	body := bytes.Repeat([]byte("kite "), 100)
	z, _ := c.Compress(nil, body)
	out, err := c.Decompress(nil, z, 4<<20)
	fmt.Println(len(out), len(z) < len(body)/10, err)
	_, err = c.Decompress(nil, z, 100)
	fmt.Println(err)
	// Output:
	// 500 true <nil>
	// kite: ResourceExhausted: zstd: body decompresses to 500 bytes, over the limit of 100
}
