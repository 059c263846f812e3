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

// TestConnectionCutsYieldUnavailable cuts a busy connection again and
// again: every call that loses its connection must fail with Unavailable
// (the documented code for a lost connection, the one retries and
// breakers act on), never with another code.
//
// Core bug: a call whose frame is queued after the connection's writer
// failed gets the writer's raw error ("write: broken pipe", "use of closed
// network connection") as code Unknown (core/clientconn.go:300 returns
// spi.AsError of it), so it is neither retried nor counted by breakers as
// a connection failure. Under this load the writer also hits the
// deadlock of TestClientWriteFailure now and then.
func TestConnectionCutsYieldUnavailable(t *testing.T) {
	strict(t, "raw write errors surface as Unknown; writer deadlock")
	_, addr := startServer(t, "s1", core.ServerOptions{}, nil)
	p, err := faultproxy.New(addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	c := newClient(t, core.ClientOptions{
		Targets:             []string{p.Addr()},
		ReconnectBackoffMin: 5 * time.Millisecond,
		ReconnectBackoffMax: 20 * time.Millisecond,
		Retry:               &resilience.Policy{MaxAttempts: 1},
	})
	_, err = echoCall(context.Background(), c, 0)
	require.NoError(t, err)
	l := startLoad(t, 16, time.Second, func(ctx context.Context, seq int) error {
		_, err := echoCall(ctx, c, seq)
		return err
	})
	stop := time.Now().Add(1500 * time.Millisecond)
	cuts := 0
	for time.Now().Before(stop) {
		time.Sleep(10 * time.Millisecond) // the fault's period
		cuts += p.CloseConns()
	}
	r := l.finish(t)
	t.Logf("%d connections cut", cuts)
	assert.Zero(t, r.Lost, "lost calls")
	assert.Positive(t, r.Codes[spi.Unavailable], "cuts were felt")
	assert.Empty(t, r.errorsOtherThan(spi.Unavailable), "a lost connection is Unavailable")
}
