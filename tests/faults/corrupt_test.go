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
	// corruptDetectBound: a call whose frame (or whose answer's frame) is
	// corrupted fails with Unavailable within this: the reader that meets
	// the bad header closes the connection at once.
	corruptDetectBound = 500 * time.Millisecond
	// corruptRecoverBound: the next calls succeed on a fresh connection
	// within this.
	corruptRecoverBound = time.Second
)

// TestCorruptedBytes flips bytes on one client's connection. A corrupted
// frame header closes that connection — on the server when the request is
// hit, on the client when the answer is — and the call fails with
// Unavailable; the client reconnects, while another client's connection
// through the same proxy, and the server, are unaffected throughout.
func TestCorruptedBytes(t *testing.T) {
	_, addr := startServer(t, "s1", core.ServerOptions{}, nil)
	p, err := faultproxy.New(addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	opts := core.ClientOptions{
		Targets:             []string{p.Addr()},
		ReconnectBackoffMin: 20 * time.Millisecond,
		ReconnectBackoffMax: 100 * time.Millisecond,
		// Heartbeats end a connection that corruption left waiting for
		// bytes that never come (a length field hit).
		HeartbeatInterval: 200 * time.Millisecond,
		HeartbeatTimeout:  300 * time.Millisecond,
		Retry:             &resilience.Policy{MaxAttempts: 1},
	}
	victim := newClient(t, opts)
	bystander := newClient(t, opts)
	ctx := context.Background()

	// The victim connects first, then the bystander: the bystander's
	// connection is the second, and every other one is the victim's.
	_, err = echoCall(ctx, victim, 0)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = p.WaitConns(wctx, 1)
	require.NoError(t, err)
	_, err = echoCall(ctx, bystander, 0)
	require.NoError(t, err)
	conns, err := p.WaitConns(wctx, 2)
	require.NoError(t, err)
	require.Len(t, conns, 2)
	bystanderConn := conns[1]
	connOf := func() *faultproxy.Conn {
		t.Helper()
		_, err := echoCall(ctx, victim, 0)
		require.NoError(t, err)
		for _, pc := range p.Conns() {
			if pc != bystanderConn {
				return pc
			}
		}
		t.Fatal("the victim has no connection")
		return nil
	}

	by := startLoad(t, 2, time.Second, func(ctx context.Context, seq int) error {
		_, err := echoCall(ctx, bystander, seq)
		return err
	})

	for _, dir := range []faultproxy.Direction{faultproxy.Upstream, faultproxy.Downstream} {
		t.Run(dir.String(), func(t *testing.T) {
			conn := connOf()
			// Offset 0 is the next frame's magic: the idle connection's
			// next write starts with a header.
			require.NoError(t, conn.Set(faultproxy.CorruptAt(dir, 0)))
			start := time.Now()
			_, err := echoCall(ctx, victim, 1)
			code, msg := codeOf(err)
			assert.Equal(t, spi.Unavailable, code, msg)
			assert.Less(t, time.Since(start), corruptDetectBound)
			select {
			case <-conn.Done():
			case <-time.After(corruptDetectBound):
				t.Fatal("the corrupted connection was not closed")
			}
			t.Logf("%s corruption: call failed after %s: %s", dir, time.Since(start).Round(time.Millisecond), msg)
			took := waitFor(t, corruptRecoverBound, "the victim reconnects", func() bool {
				_, err := echoCall(ctx, victim, 2)
				return err == nil
			})
			t.Logf("victim's calls succeed again %s later", took.Round(time.Millisecond))
		})
	}

	t.Run("random", func(t *testing.T) {
		// Random flips anywhere (lengths, ids, bodies) on the victim's
		// connections: whatever each call gets, it gets it in time.
		require.NoError(t, connOf().Set(faultproxy.CorruptRate(faultproxy.Both, 0.002, 42)))
		vl := startLoad(t, 4, time.Second, func(ctx context.Context, seq int) error {
			_, err := echoCall(ctx, victim, seq)
			return err
		})
		time.Sleep(500 * time.Millisecond) // the fault's duration
		r := vl.finish(t)
		assert.Zero(t, r.Lost, "lost calls")
		for _, pc := range p.Conns() {
			pc.Clear()
		}
		waitFor(t, corruptRecoverBound+hbBound, "the victim recovers", func() bool {
			_, err := echoCall(ctx, victim, 3)
			return err == nil
		})
	})

	r := by.finish(t)
	select {
	case <-bystanderConn.Done():
		t.Error("the bystander's connection was closed")
	default:
	}
	assert.Zero(t, r.Lost)
	assert.Empty(t, r.errorsOtherThan(), "the bystander's calls all succeed")
	assert.Greater(t, r.Codes[spi.OK], 50)
}
