package core

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
)

// Tests of the server's write side under a peer that does not read:
// back-pressure, deadlines on responses, the write timeout, and Shutdown's
// deadline. Memory is measured in a child process (the test binary run
// again with the "writeside" role) so the figures are the server's alone.

func init() { childRoles["writeside"] = runWriteSideServer }

// bigSvc answers Get with a freshly allocated, filled body of the size
// the request names (decimal text): every call holds real memory.
type bigSvc struct{ started atomic.Int64 }

func (s *bigSvc) Get(ctx context.Context, req *[]byte) (*[]byte, error) {
	s.started.Add(1)
	n, err := strconv.Atoi(string(*req))
	if err != nil {
		return nil, spi.Errorf(spi.InvalidArgument, "size %q: %v", *req, err)
	}
	if n < 0 || n > len(bigPattern) {
		return nil, spi.Errorf(spi.InvalidArgument, "size %d out of range", n)
	}
	b := make([]byte, n)
	copy(b, bigPattern) // touches every page: the memory is resident
	return &b, nil
}

// bigPattern fills bigSvc's answers (a copy, not a loop: cheap under the
// race detector too).
var bigPattern = func() []byte {
	b := make([]byte, 4<<20)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// rawRequest is one request frame for method with a raw body, as a client
// would send it; timeout 0 sends none.
func rawRequest(id uint32, method string, timeout time.Duration, body []byte) []byte {
	var fb protocol.Builder
	fb.Begin(protocol.TypeRequest, 0, spi.CodecRaw, 0, id)
	fb.B = protocol.AppendMethod(fb.B, method)
	if timeout > 0 {
		fb.B = protocol.AppendTimeout(fb.B, timeout)
	}
	fb.EndMeta()
	fb.B = append(fb.B, body...)
	out := append([]byte(nil), fb.Finish()...)
	fb.Release()
	return out
}

// sendBigRequests writes n Get requests for size-byte answers, ids from
// first, in one write.
func sendBigRequests(t *testing.T, conn net.Conn, first uint32, n, size int, timeout time.Duration) {
	t.Helper()
	var all []byte
	for i := 0; i < n; i++ {
		all = append(all, rawRequest(first+uint32(i), "Big.Get", timeout, []byte(strconv.Itoa(size)))...)
	}
	_, err := conn.Write(all)
	require.NoError(t, err)
}

// nonReader dials addr with a small receive buffer and never reads.
func nonReader(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// writerWaiters counts goroutines waiting in the writers of srv's
// connections (handlers with an answer to queue, a reader holding back).
func writerWaiters(srv *Server) int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	n := 0
	for c := range srv.conns {
		c.w.mu.Lock()
		n += c.w.waiting
		c.w.mu.Unlock()
	}
	return n
}

// wsStats is what the writeside child reports about itself.
type wsStats struct {
	RSSKiB, PeakKiB int64  // VmRSS, VmHWM
	HeapAlloc       uint64 // live heap (after a collection when asked)
	InFlight        int64
	Started         int64 // Big.Get calls started
	Conns           int
	Waiters         int
	Goroutines      int
}

type wsStatsSvc struct {
	srv *Server
	big *bigSvc
}

func (s wsStatsSvc) Get(ctx context.Context, req *[]byte) (*[]byte, error) {
	var st wsStats
	if string(*req) == "gc" {
		runtime.GC() // twice: pooled buffers survive one collection
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.HeapAlloc = ms.HeapAlloc
	st.RSSKiB, st.PeakKiB = procStatusKiB("VmRSS"), procStatusKiB("VmHWM")
	st.InFlight = s.srv.InFlight() - 1 // this call
	st.Conns = s.srv.Conns()
	st.Started = s.big.started.Load()
	st.Waiters = writerWaiters(s.srv)
	st.Goroutines = runtime.NumGoroutine()
	b, err := json.Marshal(st)
	return &b, err
}

// procStatusKiB reads one "Name: N kB" line of /proc/self/status.
func procStatusKiB(name string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

// runWriteSideServer is the child: a server with Big and Stats, its
// options from KITE_WS_* variables; it prints its address and serves
// until stdin ends.
func runWriteSideServer() int {
	opts := ServerOptions{Catalog: testCatalog(), Logger: quiet}
	if v := os.Getenv("KITE_WS_WRITE_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		opts.WriteTimeout = d
	}
	srv, err := NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	big := &bigSvc{}
	if err := srv.Register("Big", big); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := srv.Register("Stats", wsStatsSvc{srv, big}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println(ln.Addr().String())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
	return 0
}

// writeSideChild starts the child server and a client for its Stats.
type writeSideChild struct {
	addr string
	c    *Client
}

func startWriteSideChild(t *testing.T, env ...string) *writeSideChild {
	t.Helper()
	p := testkit.StartSelf(t, 5*time.Second, append([]string{childRoleEnv + "=writeside"}, env...)...)
	line, ok := p.FirstLine(10 * time.Second)
	require.True(t, ok, "child server did not start")
	addr := strings.TrimSpace(line)
	require.NotEmpty(t, addr, "child server exited before printing its address")
	c := newClient(t, ClientOptions{Targets: []string{addr}, Codec: RawCodec{}})
	return &writeSideChild{addr: addr, c: c}
}

func (w *writeSideChild) stats(t *testing.T, gc bool) wsStats {
	t.Helper()
	req := []byte("")
	if gc {
		req = []byte("gc")
	}
	var out []byte
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var st wsStats
	if err := w.c.Call(ctx, "Stats.Get", req, &out); err != nil {
		t.Errorf("stats of the child server: %v", err) // not Fatal: may run in Eventually's goroutine
		return st
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Errorf("stats of the child server: %v", err)
	}
	return st
}

const mib = 1 << 20

// TestNonReadingPeerGetsNoNewCalls is issue 19's bug 4: a peer that sends
// requests and never reads made every handler it started hold its encoded
// answer, and new calls kept being started, so the connection's memory
// grew with max_conn_concurrency x response size. Once a connection's
// unsent bytes exceed the cap, the server stops starting its calls.
func TestNonReadingPeerGetsNoNewCalls(t *testing.T) {
	w := startWriteSideChild(t)
	base := w.stats(t, true)
	conn := nonReader(t, w.addr)
	const size = 256 << 10
	// Phase 1: 64 answers of 256 KiB (16 MiB) fill the socket buffers
	// and the writer's cap; handlers end up waiting in the writer.
	sendBigRequests(t, conn, 1, 64, size, 0)
	require.Eventually(t, func() bool { return w.stats(t, false).Waiters > 0 }, 5*time.Second, 20*time.Millisecond,
		"the writer never came under back-pressure")
	// Phase 2: 400 more requests while the peer still reads nothing.
	sendBigRequests(t, conn, 1000, 400, size, 0)
	maxInFlight := int64(0)
	for deadline := time.Now().Add(700 * time.Millisecond); time.Now().Before(deadline); {
		maxInFlight = max(maxInFlight, w.stats(t, false).InFlight)
		time.Sleep(50 * time.Millisecond) // sampling period of a measurement, not a synchronisation
	}
	st := w.stats(t, false)
	grown := (st.PeakKiB - base.RSSKiB) / 1024
	t.Logf("non-reading peer, 64+400 requests for 256 KiB: max %d calls in flight, peak RSS +%d MiB (base %d MiB)",
		maxInFlight, grown, base.RSSKiB/1024)
	require.LessOrEqual(t, maxInFlight, int64(64), "calls were started on a connection whose peer reads nothing")
	require.Less(t, grown, int64(64*raceMemFactor), "peak RSS grew by %d MiB", grown)
}

// TestNonReadingPeerDoesNotPinExpiredResponses is issue 20's item 2: 500
// requests with 1 s timeouts for 256 KiB answers from a peer that never
// reads pinned ~970 handlers and their answers for as long as the peer
// stayed connected. Answers whose call deadline has passed are dropped
// (their handlers return, their memory is freed) while the connection is
// still open; then the connection, its unsent bytes above the cap for the
// write timeout, is closed.
func TestNonReadingPeerDoesNotPinExpiredResponses(t *testing.T) {
	const writeTimeout = 4 * time.Second
	w := startWriteSideChild(t, "KITE_WS_WRITE_TIMEOUT="+writeTimeout.String())
	base := w.stats(t, true)
	conn := nonReader(t, w.addr)
	start := time.Now()
	sendBigRequests(t, conn, 1, 500, 256<<10, time.Second)
	var st wsStats
	require.True(t, poll(5*time.Second, func() bool { st = w.stats(t, false); return st.Started > 0 }), "no call started")
	// 125 MiB of answers cannot fit the socket buffers: the writer is
	// under back-pressure from here on, the peer reading nothing.
	if !poll(3*time.Second, func() bool { st = w.stats(t, false); return st.InFlight == 0 }) {
		t.Fatalf("%d calls still in flight %v after they were sent with 1 s deadlines", st.InFlight, time.Since(start).Round(time.Millisecond))
	}
	drained := time.Since(start)
	held := w.stats(t, true)
	require.Equal(t, 2, held.Conns, "the connection closed before the deadlines could be checked (raise the write timeout)")
	if !poll(writeTimeout+2*time.Second, func() bool { st = w.stats(t, false); return st.Conns == 1 }) {
		t.Fatalf("the non-reading connection was not closed %v after the write timeout (%d connections)", 2*time.Second, st.Conns)
	}
	closed := time.Since(start)
	end := w.stats(t, true)
	t.Logf("non-reading peer, 500 x 256 KiB with 1 s deadlines: %d calls started, 0 in flight after %v (live heap +%d MiB, connection open); connection closed after %v (write timeout %v); peak RSS +%d MiB (base %d MiB); live heap after close +%d MiB",
		end.Started, drained.Round(time.Millisecond), int64(held.HeapAlloc-base.HeapAlloc)/mib, closed.Round(time.Millisecond), writeTimeout,
		(end.PeakKiB-base.RSSKiB)/1024, base.RSSKiB/1024, int64(end.HeapAlloc-base.HeapAlloc)/mib)
	// While open, what is held is the unsent queue (4 MiB cap plus the
	// batch being written), not the expired answers.
	require.Less(t, held.HeapAlloc, base.HeapAlloc+24*mib, "expired answers still held while the connection is open")
	require.Less(t, end.HeapAlloc, base.HeapAlloc+8*mib, "memory still held after the connection closed")
}

// poll calls cond every 20 ms until it holds or d has passed.
func poll(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestShutdownHonoursDeadlineWhenPeerDoesNotRead is issue 19's bug 2:
// with a peer that never reads, the GOAWAY write waited on back-pressure
// and the drain that follows was unbounded, so Shutdown(1 s) was still
// blocked after 5 s.
func TestShutdownHonoursDeadlineWhenPeerDoesNotRead(t *testing.T) {
	srv, err := NewServer(ServerOptions{Catalog: testCatalog(), Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, srv.Register("Big", &bigSvc{}))
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	conn := nonReader(t, ln.Addr().String())
	sendBigRequests(t, conn, 1, 24, 1<<20, 0)
	require.Eventually(t, func() bool { return writerWaiters(srv) > 0 }, 5*time.Second, 5*time.Millisecond,
		"the writer never came under back-pressure")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- srv.Shutdown(ctx) }()
	select {
	case err := <-done:
		took := time.Since(start)
		t.Logf("Shutdown(300ms) returned after %v: %v", took.Round(time.Millisecond), err)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, took, time.Second)
	case <-time.After(3 * time.Second):
		t.Fatal("Shutdown(300ms) still blocked after 3 s with a peer that does not read")
	}
	require.Zero(t, srv.Conns(), "connections left open after Shutdown's deadline")
}

// TestExpiredResponseIsDropped: an answer whose call deadline has passed
// is not queued (the caller has given up; under back-pressure it would
// only hold memory). The handler here ignores its context and returns
// after the deadline; the next frame the peer sees is the pong to a ping
// sent after the call ended, not the late answer.
func TestExpiredResponseIsDropped(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	conn := rawDial(t, f.addr)
	req := rawRequest(1, "Echo.Hold", 50*time.Millisecond, []byte(`{"id":1}`))
	req[5] = spi.CodecJSON
	_, err := conn.Write(req)
	require.NoError(t, err)
	<-f.svc.sleepStarted
	time.Sleep(100 * time.Millisecond) // past the call's 50 ms deadline
	close(f.svc.release)
	require.Eventually(t, func() bool { return f.srv.InFlight() == 0 }, 2*time.Second, time.Millisecond)
	_, err = conn.Write(protocol.AppendControl(nil, protocol.TypePing, 9, []byte("p")))
	require.NoError(t, err)
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	r := protocol.NewReader(conn, 0, 0, 0)
	var fr protocol.Frame
	require.NoError(t, r.ReadFrame(&fr))
	defer fr.Release()
	require.Equal(t, protocol.TypePong, fr.Type, "got a %v for call %d before the pong", fr.Type, fr.ID)
}
