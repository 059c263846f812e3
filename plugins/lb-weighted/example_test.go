package weighted_test

import (
	"context"
	"fmt"

	"github.com/kiterpc/kite/plugins/lb-weighted"
	"github.com/kiterpc/kite/spi"
)

func Example() {
	// What kite.hcl's `balancer "weighted" "main" { slow_start = "30s" }`
	// builds.
	b, err := spi.Default.BuildBalancer(weighted.Name, spi.Config(`{"slow_start":"30s"}`))
	if err != nil {
		panic(err)
	}
	p := b.Build([]spi.Instance{
		{Service: "user", Addr: "10.0.0.1:9000", Weight: 100},
		{Service: "user", Addr: "10.0.0.2:9000", Weight: 200},
		{Service: "user", Addr: "10.0.0.3:9000", Weight: 700},
	})
	counts := map[string]int{}
	for range 1000 {
		res, err := p.Pick(context.Background(), spi.PickInfo{Method: "User.Get"})
		if err != nil {
			panic(err)
		}
		counts[res.Instance.Addr]++
	}
	fmt.Println(counts["10.0.0.1:9000"], counts["10.0.0.2:9000"], counts["10.0.0.3:9000"])
	// Output: 100 200 700
}
