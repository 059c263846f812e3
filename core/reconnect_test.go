package core

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
)

// A pool whose server went away is redialed in the background: when the
// server returns, the connection is there before any call asks for it.
func TestPoolReconnectsWithoutCalls(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}, ConnsPerEndpoint: 2,
		ReconnectBackoffMin: 5 * time.Millisecond, ReconnectBackoffMax: 50 * time.Millisecond})
	for i := range 2 { // one call per slot: both connections dialed
		require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: i}, &EchoResp{}))
	}
	require.Equal(t, 2, f.srv.Conns())

	require.NoError(t, f.srv.Close())
	f2 := startServer(t, ServerOptions{}, f.addr)
	require.Eventually(t, func() bool { return f2.srv.Conns() == 2 }, 5*time.Second, 5*time.Millisecond,
		"both slots redialed with no call placed")
	for i := range 4 {
		require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: i}, &EchoResp{}))
	}
	require.Equal(t, 2, f2.srv.Conns(), "calls used the redialed connections")
}

// A connection draining after GOAWAY keeps its calls when its slot gets a
// new connection: replacing it must not cut the calls it still carries.
func TestDrainingConnectionKeepsCallsWhenReplaced(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr},
		ReconnectBackoffMin: 5 * time.Millisecond, ReconnectBackoffMax: 20 * time.Millisecond})
	held := c.Go(context.Background(), "Echo.Hold", &EchoReq{ID: 7}, &EchoResp{})
	<-f.svc.sleepStarted

	shut := make(chan error, 1)
	go func() { shut <- f.srv.Shutdown(context.Background()) }()
	require.Eventually(t, func() bool { // the listener is closed: the port is free
		conn, err := net.Dial("tcp", f.addr)
		if err == nil {
			conn.Close()
		}
		return err != nil
	}, 2*time.Second, 5*time.Millisecond)

	// A new server on the same address: the pool reconnects to it and new
	// calls go there, while the held call is still on the old connection.
	f2 := startServer(t, ServerOptions{}, f.addr)
	require.Eventually(t, func() bool { return f2.srv.Conns() == 1 }, 5*time.Second, 5*time.Millisecond)
	var r EchoResp
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 8, Text: "new"}, &r))
	require.Equal(t, "new", r.Text)

	close(f.svc.release)
	require.NoError(t, held.Wait(), "the call on the draining connection completes")
	require.Equal(t, "held", held.Response.(*EchoResp).Text)
	require.NoError(t, <-shut)
}

// Connections closed for idleness are not redialed: an idle client holds
// no sockets.
func TestIdleClosedConnectionIsNotRedialed(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}, IdleTimeout: 30 * time.Millisecond, HeartbeatInterval: -1})
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 1}, &EchoResp{}))
	require.Eventually(t, func() bool { return f.srv.Conns() == 0 }, 3*time.Second, 5*time.Millisecond)

	ep := c.endpoint(f.addr)
	ep.mu.Lock()
	cc := ep.slots[0]
	healing := ep.healing
	ep.mu.Unlock()
	require.NotNil(t, cc)
	require.True(t, cc.idleClosed.Load())
	require.False(t, broken(cc), "an idle-closed slot is not broken")
	require.False(t, healing, "no redial runs for it")

	// The next call dials again.
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 2}, &EchoResp{}))
	require.Equal(t, 1, f.srv.Conns())
}

// A server that stays down is redialed with backoff, not in a loop, and
// Close ends the redialing (goleak checks nothing is left).
func TestRedialBacksOffAndStopsOnClose(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr},
		ReconnectBackoffMin: 20 * time.Millisecond, ReconnectBackoffMax: 40 * time.Millisecond})
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 1}, &EchoResp{}))
	require.NoError(t, f.srv.Close())

	ep := c.endpoint(f.addr)
	failures := func() int {
		ep.mu.Lock()
		defer ep.mu.Unlock()
		return ep.failures
	}
	require.Eventually(t, func() bool { return failures() >= 3 }, 5*time.Second, 5*time.Millisecond)
	// A measurement window, not synchronisation: over 400 ms at most
	// ~400/20 redials fit; a busy loop would make thousands.
	n0 := failures()
	time.Sleep(400 * time.Millisecond)
	require.LessOrEqual(t, failures()-n0, 25)

	err := c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 2}, &EchoResp{})
	require.ErrorIs(t, err, spi.ErrUnavailable)
	require.NoError(t, c.Close())
}

// A listener that accepts and closes at once (a proxy refusing, a server
// at its connection limit) must not turn heal into a reconnect storm: a
// connection that dies before reading a single frame counts as a failed
// dial for the backoff.
func TestEarlyDeathsBackOff(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}, HeartbeatInterval: -1,
		ReconnectBackoffMin: 20 * time.Millisecond, ReconnectBackoffMax: 40 * time.Millisecond})
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 1}, &EchoResp{}))
	require.NoError(t, f.srv.Close())

	// The same port now accepts and hangs up.
	ln, err := net.Listen("tcp", f.addr)
	require.NoError(t, err)
	var accepted atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}()
	// A measurement window, not synchronisation: at a 20-40 ms backoff
	// about 10-25 connections fit in 500 ms; a storm makes thousands.
	time.Sleep(500 * time.Millisecond)
	n := accepted.Load()
	require.NoError(t, c.Close())
	ln.Close()
	<-done
	require.Positive(t, n, "heal keeps trying")
	require.LessOrEqual(t, n, int64(40), "reconnects back off")
}
