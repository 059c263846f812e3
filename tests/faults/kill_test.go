package faults

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/spi"
)

// Bounds of the server-kill scenario (docs/RELIABILITY.md).
const (
	// killDetectBound: a stream and the calls in flight on a connection to
	// a SIGKILLed server fail with Unavailable within this (the kernel
	// closes the dead process's sockets; the client reads the close).
	killDetectBound = time.Second
	// killRecoverBound: after the server is back on its address, a new
	// stream and calls succeed within this (one reconnect backoff, at most
	// ReconnectBackoffMax = 200 ms here, plus a dial).
	killRecoverBound = 2 * time.Second
)

// TestServerKilledMidStream SIGKILLs a server process under an open stream
// and a unary load: the stream's Recv and the calls in flight fail with
// Unavailable promptly, calls during the outage fail fast with
// Unavailable, and once the server is restarted on its address the client
// reconnects by itself. No call is lost.
func TestServerKilledMidStream(t *testing.T) {
	addr := freeAddr(t)
	proc := startServerProcess(t, addr)

	c := newClient(t, core.ClientOptions{
		Targets:             []string{addr},
		ReconnectBackoffMin: 20 * time.Millisecond,
		ReconnectBackoffMax: 200 * time.Millisecond,
		// One attempt, so that callers see exactly what the connection
		// did; breakers never eject the only endpoint for good anyway.
		Retry: &resilience.Policy{MaxAttempts: 1},
	})
	ctx := context.Background()
	_, err := echoCall(ctx, c, 0)
	require.NoError(t, err)

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Stream(sctx, "Echo.Ticks")
	require.NoError(t, err)
	var tick Tick
	for i := range 5 {
		require.NoError(t, st.Recv(&tick))
		require.Equal(t, i, tick.N)
	}

	l := startLoad(t, 8, 2*time.Second, func(ctx context.Context, seq int) error {
		_, err := echoCall(ctx, c, seq)
		return err
	})
	waitFor(t, 2*time.Second, "load running", func() bool { return l.snapshot().Codes[spi.OK] >= 100 })

	killed := time.Now()
	proc.Kill(t)

	// The stream ends with Unavailable, promptly.
	for {
		err = st.Recv(&tick)
		if err != nil {
			break
		}
	}
	detect := time.Since(killed)
	code, msg := codeOf(err)
	assert.Equal(t, spi.Unavailable, code, msg)
	assert.Less(t, detect, killDetectBound, "stream failure after the kill")
	t.Logf("stream failed %s after SIGKILL: %s", detect.Round(time.Millisecond), msg)

	// While the server is down, calls fail fast with Unavailable.
	for i := range 5 {
		start := time.Now()
		_, err := echoCall(ctx, c, 1000+i)
		code, msg := codeOf(err)
		assert.Equal(t, spi.Unavailable, code, msg)
		assert.Less(t, time.Since(start), killDetectBound, "a call to a dead server fails fast")
	}

	// Restart on the same address: the client reconnects on its own.
	proc = startServerProcess(t, addr)
	back := time.Now()
	var st2 *core.Stream
	took := waitFor(t, killRecoverBound, "a new stream after the restart", func() bool {
		s, err := c.Stream(sctx, "Echo.Ticks")
		if err != nil {
			return false
		}
		if s.Recv(&tick) != nil {
			return false
		}
		st2 = s
		return true
	})
	t.Logf("stream re-established %s after the server was back", took.Round(time.Millisecond))
	_, err = echoCall(ctx, c, 2000)
	require.NoError(t, err)
	okBefore := l.snapshot().Codes[spi.OK]
	waitFor(t, killRecoverBound, "the load succeeding again", func() bool { return l.snapshot().Codes[spi.OK] > okBefore+100 })
	t.Logf("load back %s after the restart", time.Since(back).Round(time.Millisecond))
	cancel()
	for st2.Recv(&tick) == nil {
	}

	r := l.finish(t)
	assert.Zero(t, r.Lost, "lost calls")
	assert.Empty(t, r.errorsOtherThan(spi.Unavailable), "only Unavailable while the server was dead")
	assert.Positive(t, r.Codes[spi.Unavailable], "the load saw the outage")
	proc.Stop()
}
