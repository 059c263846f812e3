package jsoncodec_test

import (
	"fmt"

	jsoncodec "github.com/kiterpc/kite/plugins/codec-json"
)

func Example() {
	type GetUser struct {
		ID int64 `json:"id"`
	}
	c := jsoncodec.New()
	frame := []byte("header|") // Marshal appends after what is there
	frame, _ = c.Marshal(frame, GetUser{ID: 1001})
	fmt.Println(string(frame))

	var req GetUser
	err := c.Unmarshal(frame[len("header|"):], &req)
	fmt.Println(req.ID, err)
	// Output:
	// header|{"id":1001}
	// 1001 <nil>
}
