package p2c_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kiterpc/kite/plugins/lb-p2c"
	"github.com/kiterpc/kite/spi"
)

func Example() {
	b := p2c.New(p2c.Options{FailurePenalty: time.Second})
	p := b.Build([]spi.Instance{
		{Service: "user", Addr: "10.0.0.1:9000"},
		{Service: "user", Addr: "10.0.0.2:9000"},
	})
	// A long call occupies the first instance...
	slow, _ := p.Pick(context.Background(), spi.PickInfo{Exclude: []string{"10.0.0.2:9000"}})
	// ...so the next call goes to the idle one.
	next, _ := p.Pick(context.Background(), spi.PickInfo{Method: "User.Get"})
	fmt.Println(slow.Instance.Addr, next.Instance.Addr)
	// Every picked call reports back when it ends.
	next.Done(spi.DoneInfo{Duration: 2 * time.Millisecond, Sent: true})
	slow.Done(spi.DoneInfo{Duration: 900 * time.Millisecond, Sent: true})
	inflight, latency, _ := b.Load("10.0.0.2:9000")
	fmt.Println(inflight, latency)
	// Output:
	// 10.0.0.1:9000 10.0.0.2:9000
	// 0 2ms
}
