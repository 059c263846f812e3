package resilience_test

import (
	"context"
	"fmt"

	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/spi"
)

func Example() {
	retry, err := resilience.Policy{
		MaxAttempts: 3,
		Backoff:     "10ms..1s",
		Budget:      0.1,
		Idempotent:  []string{"User.Get"},
	}.Build(resilience.Options{})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	retry.OnCall()
	// The first attempt reached the server and the connection broke.
	// User.Get is idempotent, so it may run again, after a short wait.
	wait, ok := retry.Next(ctx, 1, spi.ErrUnavailable, true, retry.IsIdempotent("User.Get"))
	fmt.Println(ok, wait >= 10e6 && wait <= 20e6)
	// User.Update is not: once sent, it is never retried.
	_, ok = retry.Next(ctx, 1, spi.ErrUnavailable, true, retry.IsIdempotent("User.Update"))
	fmt.Println(ok)
	// Output:
	// true true
	// false
}

func ExampleBreaker() {
	b := resilience.NewBreaker(resilience.BreakerConfig{ConsecutiveFailures: 2})
	for range 2 {
		if done, ok := b.Allow(); ok {
			done(false) // e.g. resilience.Failure(err)
		}
	}
	_, ok := b.Allow()
	fmt.Println(b.State(), ok)
	// Output: open false
}
