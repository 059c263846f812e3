package faults

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/internal/faultproxy"
	"github.com/kiterpc/kite/spi"
)

const (
	hbInterval = 200 * time.Millisecond
	hbTimeout  = 300 * time.Millisecond
	// hbTick is the client's janitor period: min(interval, timeout) / 2.
	hbTick = hbInterval / 2
	// hbBound: a connection to a silent peer is declared dead within the
	// heartbeat interval plus its timeout, each observed at the next
	// janitor tick, plus scheduling slack.
	hbBound = hbInterval + hbTimeout + 2*hbTick + 300*time.Millisecond
)

// TestHalfOpenConnectionDetectedByHeartbeat puts a black hole between the
// client and the server: the peer accepts bytes and never answers, not
// even with a FIN, as a host that vanished does. Calls in flight (whose
// deadline is far away) fail with Unavailable naming the missed heartbeat
// within interval + timeout, and once traffic passes again the client
// recovers by itself on a new connection.
func TestHalfOpenConnectionDetectedByHeartbeat(t *testing.T) {
	_, addr := startServer(t, "s1", core.ServerOptions{}, nil)
	p, err := faultproxy.New(addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })

	c := newClient(t, core.ClientOptions{
		Targets:             []string{p.Addr()},
		HeartbeatInterval:   hbInterval,
		HeartbeatTimeout:    hbTimeout,
		ReconnectBackoffMin: 20 * time.Millisecond,
		ReconnectBackoffMax: 100 * time.Millisecond,
		Retry:               &resilience.Policy{MaxAttempts: 1},
	})
	ctx := context.Background()
	_, err = echoCall(ctx, c, 0)
	require.NoError(t, err)

	// A deadline far beyond the heartbeat bound: only the heartbeat can
	// end these calls early.
	const deadline = 10 * time.Second
	l := startLoad(t, 4, deadline, func(ctx context.Context, seq int) error {
		_, err := echoCall(ctx, c, seq)
		return err
	})
	waitFor(t, 2*time.Second, "load running", func() bool { return l.snapshot().Codes[spi.OK] >= 50 })

	require.NoError(t, p.Set(faultproxy.BlackHole()))
	holed := time.Now()
	pctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	_, err = echoCall(pctx, c, -1)
	detect := time.Since(holed)
	code, msg := codeOf(err)
	assert.Equal(t, spi.Unavailable, code, msg)
	assert.Contains(t, msg, "heartbeat")
	assert.Less(t, detect, hbBound, "dead peer detected")
	t.Logf("half-open connection detected %s after the black hole opened: %s", detect.Round(time.Millisecond), msg)

	// Connections dialed during the outage reach the black hole too and
	// are detected the same way; keep it open for a few rounds.
	time.Sleep(2 * hbBound) // the fault's duration, not a synchronisation
	midway := l.snapshot()

	require.NoError(t, p.Set(faultproxy.Pass()))
	passed := time.Now()
	took := waitFor(t, hbBound+time.Second, "calls succeed after the black hole closed", func() bool {
		cctx, cancel := context.WithTimeout(ctx, hbBound)
		defer cancel()
		_, err := echoCall(cctx, c, -2)
		return err == nil
	})
	t.Logf("calls succeed again %s after traffic passed", took.Round(time.Millisecond))
	// The recovery bound: the black-holed connection still has to be
	// declared dead (hbBound) before a fresh one is dialed.
	assert.Less(t, time.Since(passed), hbBound+500*time.Millisecond)

	// The load's own callers recover too (they may be between calls or in
	// backoff when the probe above succeeds): wait for their next success.
	waitFor(t, 2*time.Second, "the load recovers", func() bool { return l.snapshot().Codes[spi.OK] > midway.Codes[spi.OK] })
	r := l.finish(t)
	assert.Zero(t, r.Lost, "lost calls")
	assert.Empty(t, r.errorsOtherThan(spi.Unavailable))
	assert.Positive(t, midway.Codes[spi.Unavailable], "calls in flight failed during the outage")
	assert.Contains(t, r.Samples[spi.Unavailable], "heartbeat")
	assert.Greater(t, r.Codes[spi.OK], midway.Codes[spi.OK], "the load recovered")
}
