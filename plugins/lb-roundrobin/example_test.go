package roundrobin_test

import (
	"context"
	"fmt"

	"github.com/kiterpc/kite/plugins/lb-roundrobin"
	"github.com/kiterpc/kite/spi"
)

func Example() {
	b, err := spi.Default.BuildBalancer(roundrobin.Name, nil)
	if err != nil {
		panic(err)
	}
	p := b.Build([]spi.Instance{
		{Service: "user", Addr: "10.0.0.1:9000"},
		{Service: "user", Addr: "10.0.0.2:9000"},
	})
	counts := map[string]int{}
	for range 10 {
		res, err := p.Pick(context.Background(), spi.PickInfo{Method: "User.Get"})
		if err != nil {
			panic(err)
		}
		counts[res.Instance.Addr]++
	}
	fmt.Println(counts["10.0.0.1:9000"], counts["10.0.0.2:9000"])
	// Output: 5 5
}
