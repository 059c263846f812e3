package systems

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts Write calls (each is one write(2) on TCP).
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, writes: l.writes}, nil
}

// TestRawBatchesAndReusesWorkers checks that the raw baseline really has
// the techniques it claims to share with Kite: under 64 concurrent
// callers both sides write many frames per write(2), and the server runs
// the calls on far fewer goroutines than calls. (Before, raw flushed per
// drained queue and started a goroutine per request.)
func TestRawBatchesAndReusesWorkers(t *testing.T) {
	var srvWrites, cliWrites atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serveRaw(countingListener{Listener: ln, writes: &srvWrites})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	rc := &rawClient{c: newRawConn(countingConn{Conn: nc, writes: &cliWrites}), wait: map[uint32]chan int{}, done: make(chan struct{})}
	go rc.readLoop()
	defer rc.Close()

	const callers, each = 64, 200
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := bytes.Repeat([]byte{byte(w)}, 1024)
			for range each {
				if n, err := rc.Echo(ctx, w, p); err != nil || n != len(p) {
					failed.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d callers failed", failed.Load())
	}
	calls := int64(callers * each)
	cw, sw := float64(cliWrites.Load())/float64(calls), float64(srvWrites.Load())/float64(calls)
	spawned := srv.(*rawServer).spawned.Load()
	t.Logf("%d calls: client %.3f writes/call, server %.3f writes/call, %d worker goroutines started", calls, cw, sw, spawned)
	if cw > 0.5 || sw > 0.5 {
		t.Errorf("writes per call: client %.3f, server %.3f; want batching (< 0.5)", cw, sw)
	}
	if spawned > calls/10 {
		t.Errorf("%d worker goroutines for %d calls; want reuse (< %d)", spawned, calls, calls/10)
	}
}
