package ratelimitfilter_test

import (
	"context"
	"fmt"
	"time"

	ratelimitfilter "github.com/kiterpc/kite/plugins/filter-ratelimit"
	"github.com/kiterpc/kite/spi"
)

// Two calls per second per caller, bursts of two; the third call in a row
// is refused with a hint of when to come back.
func ExampleNewFilter() {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f, err := ratelimitfilter.NewFilter(ratelimitfilter.Options{
		Rate: 2, Burst: 2, Per: ratelimitfilter.PerPeer,
		Now: func() time.Time { return now }, // a frozen clock keeps the output stable
	})
	if err != nil {
		panic(err)
	}
	inv := f.Wrap(func(context.Context, *spi.Call) error { return nil })
	for i := range 3 {
		call := &spi.Call{Side: spi.ServerSide, Method: "Users.Get", Peer: "10.0.0.7:51234"}
		if err := inv(context.Background(), call); err != nil {
			fmt.Println(i, err)
			fmt.Println("retry-after trailer:", call.Trailer.Get(ratelimitfilter.TrailerRetryAfter))
			continue
		}
		fmt.Println(i, "served")
	}
	// Output:
	// 0 served
	// 1 served
	// 2 kite: ResourceExhausted: rate limit of 2/s (burst 2) exceeded for peer 10.0.0.7; retry after 500ms
	// retry-after trailer: 500ms
}
