package consistenthash_test

import (
	"context"
	"fmt"

	"github.com/kiterpc/kite/plugins/lb-hash"
	"github.com/kiterpc/kite/spi"
)

func Example() {
	b, err := spi.Default.BuildBalancer(consistenthash.Name, spi.Config(`{"replicas":160}`))
	if err != nil {
		panic(err)
	}
	p := b.Build([]spi.Instance{
		{Service: "user", Addr: "10.0.0.1:9000"},
		{Service: "user", Addr: "10.0.0.2:9000"},
		{Service: "user", Addr: "10.0.0.3:9000"},
	})
	// The caller marks the call with its affinity key; the client copies
	// it into PickInfo.Key (the picker also reads it from the context).
	ctx := spi.WithAffinityKey(context.Background(), "user-1001")
	a, _ := p.Pick(ctx, spi.PickInfo{Method: "User.Get"})
	c, _ := p.Pick(ctx, spi.PickInfo{Method: "User.Update"})
	fmt.Println(a.Instance.Addr == c.Instance.Addr)
	// Output: true
}
