package random_test

import (
	"context"
	"fmt"

	"github.com/kiterpc/kite/plugins/lb-random"
	"github.com/kiterpc/kite/spi"
)

func Example() {
	b, err := spi.Default.BuildBalancer(random.Name, nil)
	if err != nil {
		panic(err)
	}
	p := b.Build([]spi.Instance{
		{Service: "user", Addr: "10.0.0.1:9000", Weight: 100},
		{Service: "user", Addr: "10.0.0.2:9000", Weight: 300},
	})
	// A retry excludes the instance it already tried.
	res, err := p.Pick(context.Background(), spi.PickInfo{
		Method:  "User.Get",
		Exclude: []string{"10.0.0.2:9000"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Instance.Addr)
	// Output: 10.0.0.1:9000
}
