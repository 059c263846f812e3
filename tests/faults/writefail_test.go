package faults

import (
	"context"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/spi"
)

// strict marks the tests that reproduced core bugs (now fixed); they
// always run.
func strict(t *testing.T, bug string) { t.Helper() }

// breakable is a TCP transport whose connections can be made to fail
// every write (EPIPE, as after the peer reset) while reads keep blocking:
// the order in which a real dead peer is often noticed under load.
type breakable struct {
	broken atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func (b *breakable) Name() string { return "breakable" }
func (b *breakable) Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}
func (b *breakable) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.conns = append(b.conns, c)
	b.mu.Unlock()
	return &breakableConn{Conn: c, b: b}, nil
}

type breakableConn struct {
	net.Conn
	b *breakable
}

func (c *breakableConn) Write(p []byte) (int, error) {
	if c.b.broken.Load() {
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}
	}
	return c.Conn.Write(p)
}

// TestClientWriteFailure: when a client connection's write fails before
// its reader notices anything, the call in flight must fail with
// Unavailable (the code of a lost connection: retried when safe, counted
// by the breaker) and the connection must close cleanly, so that
// Client.Close returns. Two paths, two core bugs:
//
//   - idle: the frame is written from the caller's goroutine, whose write
//     error comes back raw from batchWriter.write, and roundTrip returns
//     spi.AsError of it: code Unknown ("write tcp: write: broken pipe").
//   - busy: the frame goes through the writer goroutine, which reports
//     the failure synchronously (batchWriter.loop → fail(err, true) →
//     onErr → clientConn.close → batchWriter.close, which waits on w.done,
//     closed only when that same loop returns): the writer deadlocks with
//     itself, closeOnce never completes, Client.Close blocks forever.
func TestClientWriteFailure(t *testing.T) {
	strict(t, "raw write errors surface as Unknown; client writer deadlocks on a write error")
	for _, busy := range []bool{false, true} {
		name := "idle"
		if busy {
			name = "busy"
		}
		t.Run(name, func(t *testing.T) { clientWriteFailure(t, busy) })
	}
}

func clientWriteFailure(t *testing.T, busy bool) {
	_, addr := startServer(t, "s1", core.ServerOptions{}, nil)
	tr := &breakable{}
	c, err := core.NewClient(core.ClientOptions{
		Targets:           []string{addr},
		Transport:         tr,
		HeartbeatInterval: -1,
		Retry:             &resilience.Policy{MaxAttempts: 1},
		Logger:            testLogger(),
	})
	require.NoError(t, err)
	ctx := context.Background()
	_, err = echoCall(ctx, c, 0)
	require.NoError(t, err)
	if busy {
		// An open stream keeps the connection busy, so the next frame is
		// queued for the writer goroutine.
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		_, err := c.Stream(sctx, "Echo.Ticks")
		require.NoError(t, err)
	}

	tr.broken.Store(true)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = echoCall(cctx, c, 1)
	code, msg := codeOf(err)
	assert.Equal(t, spi.Unavailable, code, msg)

	closed := make(chan struct{})
	go func() {
		_ = c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("Client.Close blocked after a write failure: the connection's writer deadlocked")
	}
}
