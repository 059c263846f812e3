package core

import (
	"context"
	"testing"

	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
)

// SetBreaker swaps the breakers of a running client: the endpoint the old
// set ejected is back in rotation, and the new thresholds apply.
func TestSetBreaker(t *testing.T) {
	bad, badAddr := startFlaky(t, "bad", true)
	_, goodAddr := startFlaky(t, "good", false)
	c := newClient(t, ClientOptions{
		Targets: []string{goodAddr, badAddr},
		Retry:   &resilience.Policy{MaxAttempts: 1},
		Breaker: &resilience.BreakerConfig{ConsecutiveFailures: 1, FailureRatio: -1},
	})
	callAll := func(n int) (failed int) {
		for i := range n {
			if err := c.Call(context.Background(), "Flaky.Do", &EchoReq{ID: i}, &EchoResp{}); err != nil {
				require.ErrorIs(t, err, spi.ErrUnavailable)
				failed++
			}
		}
		return failed
	}
	require.Equal(t, 1, callAll(4), "one failure ejects the bad endpoint")
	require.Equal(t, []string{badAddr}, c.Stats().Ejected)

	// Never eject: the bad endpoint is back, and stays in rotation.
	c.SetBreaker(resilience.BreakerConfig{ConsecutiveFailures: -1, FailureRatio: -1})
	require.Empty(t, c.Stats().Ejected)
	before := bad.calls.Load()
	require.Equal(t, 5, callAll(10), "round robin: every other call meets the bad endpoint")
	require.Equal(t, before+5, bad.calls.Load())
	require.Empty(t, c.Stats().Ejected)
	require.Equal(t, uint64(1), c.Stats().Ejections, "the counter is the client's, across sets")

	// Strict again.
	c.SetBreaker(resilience.BreakerConfig{ConsecutiveFailures: 1, FailureRatio: -1})
	require.Equal(t, 1, callAll(4))
	require.Equal(t, []string{badAddr}, c.Stats().Ejected)
}

// SetRetry swaps a running client's retry settings, per-method
// idempotency included; settings that do not build are refused and the
// running ones kept.
func TestSetRetry(t *testing.T) {
	_, badAddr := startFlaky(t, "bad", true)
	_, goodAddr := startFlaky(t, "good", false)
	c := newClient(t, ClientOptions{
		Targets: []string{goodAddr, badAddr},
		Retry:   &resilience.Policy{MaxAttempts: 1},
		Breaker: &resilience.BreakerConfig{ConsecutiveFailures: -1, FailureRatio: -1},
	})
	failures := func() (n int) {
		for i := range 10 {
			if c.Call(context.Background(), "Flaky.Do", &EchoReq{ID: i}, &EchoResp{}) != nil {
				n++
			}
		}
		return n
	}
	require.Equal(t, 5, failures(), "no retries: every call that meets the bad endpoint fails")

	// The bad endpoint answers Unavailable after the request was sent:
	// only an idempotent method may be retried, on the other endpoint.
	require.NoError(t, c.SetRetry(RetrySettings{
		Retry:   &resilience.Policy{MaxAttempts: 3, Backoff: "1ms..5ms", Budget: 1},
		Methods: map[string]MethodOptions{"Flaky.Do": {Idempotent: true}},
	}))
	require.Zero(t, failures())

	require.Error(t, c.SetRetry(RetrySettings{Retry: &resilience.Policy{Backoff: "fast"}}))
	require.Zero(t, failures(), "a refused change keeps the running settings")
}
