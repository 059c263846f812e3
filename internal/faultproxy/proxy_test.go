package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes every connection back to its sender.
type echoServer struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e := &echoServer{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				_, _ = io.Copy(c, c)
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		e.closeConns()
		e.wg.Wait()
	})
	return e
}

func (e *echoServer) addr() string { return e.ln.Addr().String() }

func (e *echoServer) closeConns() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.conns {
		_ = c.Close()
	}
	e.conns = nil
}

func startProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes msg and reads len(msg) bytes back.
func roundTrip(t *testing.T, c net.Conn, msg []byte) []byte {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err := c.Write(msg)
	require.NoError(t, err)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	return got
}

// silent asserts that nothing arrives on c for d (and that c stays open).
func silent(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(d)))
	var b [1]byte
	n, err := c.Read(b[:])
	assert.Zero(t, n)
	require.Error(t, err)
	assert.True(t, errors.Is(err, os.ErrDeadlineExceeded), "want a read timeout, got %v", err)
}

// closedByPeer asserts that c is closed by the other side within d.
func closedByPeer(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(d)))
	_, err := io.Copy(io.Discard, c)
	if err != nil {
		assert.False(t, errors.Is(err, os.ErrDeadlineExceeded), "connection still open after %s", d)
	}
}

func TestPass(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr())
	c := dial(t, p)
	msg := bytes.Repeat([]byte("kite"), 50000) // several chunks
	go func() { _, _ = c.Write(msg) }()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	got := make([]byte, len(msg))
	_, err := io.ReadFull(c, got)
	require.NoError(t, err)
	assert.Equal(t, msg, got)
	conns := p.Conns()
	require.Len(t, conns, 1)
	assert.Equal(t, uint64(1), conns[0].ID())
	assert.Equal(t, c.LocalAddr().String(), conns[0].ClientAddr())
	assert.Equal(t, int64(len(msg)), conns[0].Forwarded(Upstream))
	assert.Equal(t, int64(len(msg)), conns[0].Forwarded(Downstream))
	assert.Equal(t, int64(2*len(msg)), conns[0].Forwarded(Both))
}

func TestDelay(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr())
	c := dial(t, p)
	roundTrip(t, c, []byte("warm"))

	const lat = 60 * time.Millisecond
	require.NoError(t, p.Set(Delay(lat)))
	start := time.Now()
	assert.Equal(t, []byte("slow"), roundTrip(t, c, []byte("slow")))
	assert.GreaterOrEqual(t, time.Since(start), 2*lat, "delayed both ways")

	require.NoError(t, p.Set(DelayDir(Downstream, lat)))
	start = time.Now()
	roundTrip(t, c, []byte("one way"))
	rtt := time.Since(start)
	assert.GreaterOrEqual(t, rtt, lat)

	// Pipelined: many chunks in flight cost one latency, not one each.
	require.NoError(t, p.Set(Delay(lat)))
	start = time.Now()
	for i := range 20 {
		_, err := c.Write([]byte{byte(i)})
		require.NoError(t, err)
	}
	got := make([]byte, 20)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := io.ReadFull(c, got)
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 20*lat, "chunks are pipelined")

	require.NoError(t, p.Set(Pass()))
	start = time.Now()
	roundTrip(t, c, []byte("fast"))
	assert.Less(t, time.Since(start), lat)
}

// TestDelayJitter: each chunk is delayed by the latency ± the jitter, so
// round trips spread over the range; bytes still arrive in order.
func TestDelayJitter(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr())
	c := dial(t, p)
	roundTrip(t, c, []byte("warm"))

	const lat, jit = 40 * time.Millisecond, 20 * time.Millisecond
	require.NoError(t, p.Set(DelayJitter(lat, jit, 7)))
	lo, hi := time.Hour, time.Duration(0)
	for range 20 {
		start := time.Now()
		roundTrip(t, c, []byte("j"))
		rtt := time.Since(start)
		lo, hi = min(lo, rtt), max(hi, rtt)
	}
	t.Logf("round trips with %s ± %s each way: %s .. %s", lat, jit, lo.Round(time.Millisecond), hi.Round(time.Millisecond))
	assert.GreaterOrEqual(t, lo, 2*(lat-jit), "never faster than the latency less the jitter")
	assert.Greater(t, hi-lo, jit, "the delays vary")

	// In order, whatever each chunk drew.
	want := make([]byte, 64)
	for i := range want {
		want[i] = byte(i)
		_, err := c.Write(want[i : i+1])
		require.NoError(t, err)
	}
	got := make([]byte, len(want))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := io.ReadFull(c, got)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	assert.Error(t, p.Set(DelayJitter(lat, 2*lat, 1)), "jitter beyond the latency")
	assert.Equal(t, "delay both 40ms ±20ms", DelayJitter(lat, jit, 1).String())
}

func TestDrop(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr())
	c := dial(t, p)
	roundTrip(t, c, []byte("warm"))

	for _, dir := range []Direction{Upstream, Downstream, Both} {
		require.NoError(t, p.Set(Drop(dir)))
		_, err := c.Write([]byte("lost"))
		require.NoError(t, err)
		silent(t, c, 100*time.Millisecond)
		require.NoError(t, p.Set(Pass()))
		// Only what is sent after the drop comes back.
		assert.Equal(t, []byte("kept"), roundTrip(t, c, []byte("kept")), dir.String())
	}
}

func TestCut(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr())
	c := dial(t, p)
	roundTrip(t, c, []byte("warm"))

	require.NoError(t, p.Set(Cut()))
	closedByPeer(t, c, 2*time.Second)
	assert.Empty(t, p.Conns())

	// New connections are closed on arrival while the cut holds, without
	// reaching the target.
	before := e.accepted.Load()
	c2 := dial(t, p)
	closedByPeer(t, c2, 2*time.Second)
	assert.Equal(t, before, e.accepted.Load())
	assert.Equal(t, int64(1), p.Refused())

	require.NoError(t, p.Set(Pass()))
	c3 := dial(t, p)
	assert.Equal(t, []byte("back"), roundTrip(t, c3, []byte("back")))
	assert.Equal(t, int64(3), p.Accepted())

	// A one-off cut: connections close, new ones pass.
	assert.Equal(t, 1, p.CloseConns())
	closedByPeer(t, c3, 2*time.Second)
	c4 := dial(t, p)
	assert.Equal(t, []byte("again"), roundTrip(t, c4, []byte("again")))
}

func TestCorruptAt(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr())
	c := dial(t, p)
	roundTrip(t, c, []byte("warm"))

	// The offset counts from the moment the fault is set.
	require.NoError(t, p.Set(CorruptAt(Upstream, 2)))
	got := roundTrip(t, c, []byte{0, 1, 2, 3})
	assert.Equal(t, []byte{0, 1, 2 ^ 0xFF, 3}, got)
	assert.Equal(t, []byte{4, 5}, roundTrip(t, c, []byte{4, 5}), "one byte only")

	// Downstream, spanning a later write.
	require.NoError(t, p.Set(CorruptAt(Downstream, 5)))
	assert.Equal(t, []byte("abc"), roundTrip(t, c, []byte("abc")))
	assert.Equal(t, []byte{'d', 'e', 'f' ^ 0xFF}, roundTrip(t, c, []byte("def")))
}

func TestCorruptRate(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr())
	c := dial(t, p)
	roundTrip(t, c, []byte("warm"))

	msg := bytes.Repeat([]byte{0x55}, 1000)
	require.NoError(t, p.Set(CorruptRate(Upstream, 1, 7)))
	got := roundTrip(t, c, msg)
	for i, b := range got {
		require.NotEqual(t, byte(0x55), b, "byte %d not flipped at rate 1", i)
	}
	require.NoError(t, p.Set(CorruptRate(Both, 0.05, 7)))
	got = roundTrip(t, c, msg)
	diff := 0
	for _, b := range got {
		if b != 0x55 {
			diff++
		}
	}
	// Each direction flips ~5% (a second flip of a byte may restore it).
	assert.InDelta(t, 100, diff, 60)
	require.NoError(t, p.Set(Pass()))
	assert.Equal(t, msg, roundTrip(t, c, msg))
}

func TestBlackHole(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr())
	c := dial(t, p)
	roundTrip(t, c, []byte("warm"))

	require.NoError(t, p.Set(BlackHole()))
	conns := p.Conns()
	require.Len(t, conns, 1)
	assert.True(t, conns[0].BlackHoled())
	// Writes are accepted and swallowed; nothing comes back, and the
	// connection stays open.
	for range 10 {
		_, err := c.Write([]byte("anyone there?"))
		require.NoError(t, err)
	}
	silent(t, c, 150*time.Millisecond)

	// Even the target going away is not reported to the client.
	e.closeConns()
	silent(t, c, 150*time.Millisecond)

	// A connection arriving during the black hole is accepted, never
	// forwarded.
	before := e.accepted.Load()
	c2 := dial(t, p)
	_, err := c2.Write([]byte("hello?"))
	require.NoError(t, err)
	silent(t, c2, 100*time.Millisecond)
	assert.Equal(t, before, e.accepted.Load())

	// Passing again serves new connections; the black-holed ones stay so.
	require.NoError(t, p.Set(Pass()))
	silent(t, c2, 100*time.Millisecond)
	c3 := dial(t, p)
	assert.Equal(t, []byte("ok"), roundTrip(t, c3, []byte("ok")))

	// Closing a black-holed connection from the client side ends it.
	n := len(p.Conns())
	require.NoError(t, c2.Close())
	require.Eventually(t, func() bool { return len(p.Conns()) == n-1 }, 2*time.Second, 5*time.Millisecond)
}

func TestConnOverride(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr())
	a, b := dial(t, p), dial(t, p)
	roundTrip(t, a, []byte("a"))
	roundTrip(t, b, []byte("b"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conns, err := p.WaitConns(ctx, 2)
	require.NoError(t, err)
	require.Len(t, conns, 2)
	ca := conns[0]
	if ca.ClientAddr() != a.LocalAddr().String() {
		ca = conns[1]
	}
	require.Equal(t, a.LocalAddr().String(), ca.ClientAddr())

	require.NoError(t, ca.Set(Drop(Both)))
	_, err = a.Write([]byte("x"))
	require.NoError(t, err)
	silent(t, a, 100*time.Millisecond)
	assert.Equal(t, []byte("unaffected"), roundTrip(t, b, []byte("unaffected")))

	// The connection's fault wins over the proxy's, until cleared.
	require.NoError(t, p.Set(Delay(time.Millisecond)))
	silent(t, a, 50*time.Millisecond)
	ca.Clear()
	assert.Equal(t, []byte("y"), roundTrip(t, a, []byte("y")))

	// A per-connection cut closes only that connection.
	require.NoError(t, ca.Set(Cut()))
	closedByPeer(t, a, 2*time.Second)
	<-ca.Done()
	assert.Equal(t, []byte("still"), roundTrip(t, b, []byte("still")))
}

func TestSetTarget(t *testing.T) {
	e1, e2 := startEcho(t), startEcho(t)
	p := startProxy(t, e1.addr())
	c1 := dial(t, p)
	roundTrip(t, c1, []byte("1"))
	p.SetTarget(e2.addr())
	assert.Equal(t, e2.addr(), p.Target())
	c2 := dial(t, p)
	roundTrip(t, c2, []byte("2"))
	assert.Equal(t, int64(1), e1.accepted.Load())
	assert.Equal(t, int64(1), e2.accepted.Load())
}

func TestUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	p := startProxy(t, addr)
	c := dial(t, p)
	closedByPeer(t, c, 3*time.Second)
	require.Eventually(t, func() bool { return p.Refused() == 1 }, 2*time.Second, 5*time.Millisecond)
}

func TestTargetCloses(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr())
	c := dial(t, p)
	roundTrip(t, c, []byte("warm"))
	e.closeConns()
	closedByPeer(t, c, 2*time.Second)
	require.Eventually(t, func() bool { return len(p.Conns()) == 0 }, 2*time.Second, 5*time.Millisecond)
}

func TestCloseWithTrafficInFlight(t *testing.T) {
	e := startEcho(t)
	p, err := New(e.addr())
	require.NoError(t, err)
	require.NoError(t, p.Set(Delay(time.Hour)))
	var cs []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", p.Addr())
		require.NoError(t, err)
		cs = append(cs, c)
		_, err = c.Write([]byte("parked"))
		require.NoError(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = p.WaitConns(ctx, 5)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked with delayed traffic queued")
	}
	for _, c := range cs {
		closedByPeer(t, c, time.Second)
		_ = c.Close()
	}
	require.NoError(t, p.Close(), "Close twice")
	_, err = p.WaitConns(context.Background(), 1)
	assert.ErrorIs(t, err, net.ErrClosed)
}

func TestInvalidFaults(t *testing.T) {
	p := startProxy(t, "127.0.0.1:1")
	for _, f := range []Fault{
		{Mode: ModeDelay, Latency: -1},
		{Mode: ModeCorrupt, Offset: -1},
		{Mode: ModeCorrupt, Offset: -1, Rate: 2},
		{Mode: Mode(42)},
		{Mode: ModeDrop, Dir: Direction(9)},
	} {
		assert.Error(t, p.Set(f), f.String())
	}
	assert.Equal(t, ModePass, p.Fault().Mode)
	assert.Equal(t, "corrupt upstream at 3", CorruptAt(Upstream, 3).String())
	assert.Equal(t, "corrupt both rate 0.5", CorruptRate(Both, 0.5, 1).String())
	assert.Equal(t, "delay downstream 1s", DelayDir(Downstream, time.Second).String())
	assert.Equal(t, "black-hole", BlackHole().String())
	assert.Equal(t, "drop upstream", Drop(Upstream).String())
}
