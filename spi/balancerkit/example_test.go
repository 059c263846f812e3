package balancerkit_test

import (
	"fmt"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/balancerkit"
)

// A table balancer lays out one period of picks from PeriodWeights.
func ExamplePeriodWeights() {
	ins := []spi.Instance{
		{Service: "user", Addr: "127.0.0.1:9001", Weight: 300},
		{Service: "user", Addr: "127.0.0.1:9002"}, // default weight 100
	}
	w, total := balancerkit.PeriodWeights(ins, 1<<16)
	var sched []int
	for i, n := range w {
		for range n {
			sched = append(sched, i)
		}
	}
	fmt.Println(w, total, spi.PickTable{Schedule: sched}.Schedule)
	// Output: [3 1] 4 [0 0 0 1]
}
