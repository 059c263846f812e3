package s2_test

import (
	"bytes"
	"fmt"

	s2 "github.com/kiterpc/kite/plugins/compress-s2"
)

func Example() {
	c, err := s2.NewWithConfig(s2.Config{Level: s2.LevelBetter})
	if err != nil {
		panic(err)
	}
	body := bytes.Repeat([]byte("kite "), 100)
	z, _ := c.Compress(nil, body)
	out, err := c.Decompress(nil, z, 4<<20)
	fmt.Println(len(out), len(z) < len(body)/10, err)
	// Output: 500 true <nil>
}
