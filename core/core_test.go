package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childRoleEnv); role != "" {
		os.Exit(runChildRole(role))
	}
	goleak.VerifyTestMain(m)
}

// testJSON is a test-local JSON codec: core tests must not import plugins.
type testJSON struct{}

func (testJSON) Name() string { return "json" }
func (testJSON) ID() uint8    { return spi.CodecJSON }
func (testJSON) Marshal(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}
func (testJSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

func testCatalog() *spi.Catalog {
	cat := &spi.Catalog{}
	_ = cat.Add(spi.Entry{Kind: spi.KindCodec, Name: "json", New: func(spi.Config) (any, error) { return testJSON{}, nil }})
	return cat
}

var quiet = hclog.NewNullLogger()

type EchoReq struct {
	ID   int    `json:"id"`
	Text string `json:"text"`
}
type EchoResp struct {
	ID   int    `json:"id"`
	Text string `json:"text"`
	Peer string `json:"peer,omitempty"`
}

type echoSvc struct {
	sleepStarted chan struct{}
	sleepDone    chan error
	release      chan struct{}
	oneway       chan string
}

func newEchoSvc() *echoSvc {
	return &echoSvc{sleepStarted: make(chan struct{}, 16), sleepDone: make(chan error, 16), release: make(chan struct{}), oneway: make(chan string, 16)}
}

func (s *echoSvc) Echo(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	return &EchoResp{ID: r.ID, Text: r.Text}, nil
}

func (s *echoSvc) Fail(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	return nil, &spi.Error{Code: spi.NotFound, Message: fmt.Sprintf("no item %d", r.ID), Details: []byte("d")}
}

func (s *echoSvc) Panic(ctx context.Context, r *EchoReq) (*EchoResp, error) { panic("boom") }

// Sleep waits up to 1 s or until its context ends, reporting which.
func (s *echoSvc) Sleep(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	s.sleepStarted <- struct{}{}
	select {
	case <-ctx.Done():
		s.sleepDone <- ctx.Err()
		return nil, ctx.Err()
	case <-time.After(time.Second):
		s.sleepDone <- nil
		return &EchoResp{ID: r.ID}, nil
	}
}

// Hold blocks until release is closed (for shutdown tests).
func (s *echoSvc) Hold(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	s.sleepStarted <- struct{}{}
	<-s.release
	return &EchoResp{ID: r.ID, Text: "held"}, nil
}

func (s *echoSvc) Notify(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	s.oneway <- r.Text
	return nil, nil
}

// Count streams r.ID messages to the caller.
func (s *echoSvc) Count(ctx context.Context, st *Stream) error {
	var r EchoReq
	if err := st.Recv(&r); err != nil {
		return err
	}
	for i := 0; i < r.ID; i++ {
		if err := st.Send(&EchoResp{ID: i}); err != nil {
			return err
		}
	}
	if r.Text == "fail" {
		return spi.Errorf(spi.Aborted, "stopped after %d", r.ID)
	}
	return nil
}

// Chat echoes every message until the caller closes its side.
func (s *echoSvc) Chat(ctx context.Context, st *Stream) error {
	for {
		var r EchoReq
		err := st.Recv(&r)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := st.Send(&EchoResp{ID: r.ID, Text: "re:" + r.Text}); err != nil {
			return err
		}
	}
}

type fixture struct {
	srv  *Server
	svc  *echoSvc
	addr string
	ln   net.Listener
}

func startServer(t *testing.T, opts ServerOptions, addr string) *fixture {
	t.Helper()
	if opts.Catalog == nil {
		opts.Catalog = testCatalog()
	}
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	srv, err := NewServer(opts)
	require.NoError(t, err)
	svc := newEchoSvc()
	require.NoError(t, srv.Register("Echo", svc))
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := srv.Listen(context.Background(), addr, nil)
	require.NoError(t, err)
	f := &fixture{srv: srv, svc: svc, addr: ln.Addr().String(), ln: ln}
	if ln.Addr().Network() == "unix" {
		f.addr = "unix:" + ln.Addr().String()
	}
	t.Cleanup(func() { _ = srv.Close() })
	return f
}

func newClient(t *testing.T, opts ClientOptions) *Client {
	t.Helper()
	if opts.Catalog == nil {
		opts.Catalog = testCatalog()
	}
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	c, err := NewClient(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestUnaryEcho(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	var resp EchoResp
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 7, Text: "hi"}, &resp))
	require.Equal(t, EchoResp{ID: 7, Text: "hi"}, resp)
}

func TestManyCallsOverOneConnection(t *testing.T) {
	var accepted atomic.Int32
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}, ConnsPerEndpoint: 1})
	const workers, per = 200, 50 // 10,000 calls
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				id := w*per + i
				var resp EchoResp
				if err := c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: id, Text: fmt.Sprint("m", id)}, &resp); err != nil {
					errs <- err
					return
				}
				if resp.ID != id || resp.Text != fmt.Sprint("m", id) {
					errs <- fmt.Errorf("call %d got %+v", id, resp)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	f.srv.mu.Lock()
	accepted.Store(int32(len(f.srv.conns)))
	f.srv.mu.Unlock()
	require.Equal(t, int32(1), accepted.Load(), "all calls must share one connection")
}

func TestDeadlinePropagatesAndCancelsHandler(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Call(ctx, "Echo.Sleep", &EchoReq{ID: 1}, &EchoResp{})
	elapsed := time.Since(start)
	require.Error(t, err)
	require.ErrorIs(t, err, spi.ErrDeadlineExceeded)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, elapsed, 100*time.Millisecond)
	select {
	case herr := <-f.svc.sleepDone:
		// The server's own timer and the client's cancel frame race; either
		// way the handler's context must have ended, well before 1 s.
		require.Error(t, herr, "handler context must end")
		require.True(t, errors.Is(herr, context.DeadlineExceeded) || errors.Is(herr, context.Canceled), "%v", herr)
	case <-time.After(500 * time.Millisecond):
		t.Fatal("handler context was not cancelled")
	}
}

func TestCancelFrameCancelsHandler(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	ctx, cancel := context.WithCancel(context.Background())
	fut := c.Go(ctx, "Echo.Sleep", &EchoReq{ID: 1}, &EchoResp{})
	<-f.svc.sleepStarted
	cancel()
	require.ErrorIs(t, fut.Wait(), spi.ErrCanceled)
	select {
	case herr := <-f.svc.sleepDone:
		require.ErrorIs(t, herr, context.Canceled)
	case <-time.After(500 * time.Millisecond):
		t.Fatal("cancel frame did not reach the handler")
	}
}

func TestErrorsCrossTheWire(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	err := c.Call(context.Background(), "Echo.Fail", &EchoReq{ID: 9}, &EchoResp{})
	var ke *spi.Error
	require.ErrorAs(t, err, &ke)
	require.Equal(t, spi.NotFound, ke.Code)
	require.Equal(t, "no item 9", ke.Message)
	require.Equal(t, []byte("d"), ke.Details)
	require.ErrorIs(t, err, spi.ErrNotFound)

	err = c.Call(context.Background(), "Echo.Nope", &EchoReq{}, &EchoResp{})
	require.ErrorIs(t, err, spi.ErrUnimplemented)
	require.Contains(t, err.Error(), "Echo.Nope")
}

// A panic becomes a generic Internal error with an incident id; the panic
// value (which may hold a secret) and the stack go to the server's log
// only, under the same id (issue 20 item 5).
func TestPanicBecomesInternalAndServerKeepsServing(t *testing.T) {
	var logs syncBuffer
	f := startServer(t, ServerOptions{Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Error})}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	err := c.Call(context.Background(), "Echo.Panic", &EchoReq{}, &EchoResp{})
	require.ErrorIs(t, err, spi.ErrInternal)
	require.NotContains(t, err.Error(), "boom", "the panic value must not reach the caller")
	_, id, ok := strings.Cut(err.Error(), "incident ")
	require.True(t, ok, "the caller gets an incident id: %v", err)
	id = id[:16]
	require.Contains(t, logs.String(), "incident="+id)
	require.Contains(t, logs.String(), "panic=boom")
	require.Contains(t, logs.String(), "goroutine ", "the stack is logged")
	var resp EchoResp
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 2}, &resp))
	require.Equal(t, 2, resp.ID)
}

func TestAsyncAndOneWay(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	futs := make([]*Future, 20)
	for i := range futs {
		futs[i] = c.Go(context.Background(), "Echo.Echo", &EchoReq{ID: i}, &EchoResp{})
	}
	for i, fu := range futs {
		<-fu.Done()
		require.NoError(t, fu.Err())
		require.Equal(t, i, fu.Response.(*EchoResp).ID)
	}
	require.NoError(t, c.OneWay(context.Background(), "Echo.Notify", &EchoReq{Text: "ping"}))
	select {
	case got := <-f.svc.oneway:
		require.Equal(t, "ping", got)
	case <-time.After(2 * time.Second):
		t.Fatal("one-way call did not arrive")
	}
}

func TestServerStreaming(t *testing.T) {
	// Different windows on the two sides: the protocol's initial credit
	// plus window updates keep them consistent.
	f := startServer(t, ServerOptions{StreamWindow: 16}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}, StreamWindow: 200})
	st, err := c.Stream(context.Background(), "Echo.Count")
	require.NoError(t, err)
	require.NoError(t, st.Send(&EchoReq{ID: 100}))
	require.NoError(t, st.CloseSend())
	for i := 0; i < 100; i++ {
		var r EchoResp
		require.NoError(t, st.Recv(&r))
		require.Equal(t, i, r.ID)
	}
	var r EchoResp
	require.ErrorIs(t, st.Recv(&r), io.EOF)

	// A stream that ends with an error delivers it after the data.
	st, err = c.Stream(context.Background(), "Echo.Count")
	require.NoError(t, err)
	require.NoError(t, st.Send(&EchoReq{ID: 2, Text: "fail"}))
	require.NoError(t, st.Recv(&r))
	require.NoError(t, st.Recv(&r))
	err = st.Recv(&r)
	require.ErrorIs(t, err, spi.ErrAborted)
}

func TestBidiStreaming(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	st, err := c.Stream(context.Background(), "Echo.Chat")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 500; i++ {
			if err := st.Send(&EchoReq{ID: i, Text: "x"}); err != nil {
				done <- err
				return
			}
		}
		done <- st.CloseSend()
	}()
	for i := 0; i < 500; i++ {
		var r EchoResp
		require.NoError(t, st.Recv(&r))
		require.Equal(t, i, r.ID)
		require.Equal(t, "re:x", r.Text)
	}
	require.NoError(t, <-done)
	require.ErrorIs(t, st.Recv(&EchoResp{}), io.EOF)
}

func TestStreamCancelReachesHandler(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	ctx, cancel := context.WithCancel(context.Background())
	st, err := c.Stream(ctx, "Echo.Chat")
	require.NoError(t, err)
	require.NoError(t, st.Send(&EchoReq{ID: 1}))
	require.NoError(t, st.Recv(&EchoResp{}))
	cancel()
	require.ErrorIs(t, st.Recv(&EchoResp{}), spi.ErrCanceled)
	// The server side must have let go of the stream.
	require.Eventually(t, func() bool { return f.srv.inflight.Load() == 0 }, 2*time.Second, 5*time.Millisecond)
}

func TestServerKilledMidCallThenReconnect(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	addr := f.addr
	c := newClient(t, ClientOptions{Targets: []string{addr}, ReconnectBackoffMin: 5 * time.Millisecond, ReconnectBackoffMax: 20 * time.Millisecond})
	fut := c.Go(context.Background(), "Echo.Hold", &EchoReq{ID: 1}, &EchoResp{})
	<-f.svc.sleepStarted
	require.NoError(t, f.srv.Close()) // abrupt: sockets closed under the call
	close(f.svc.release)
	err := fut.Wait()
	require.ErrorIs(t, err, spi.ErrUnavailable)

	// Calls fail while nothing listens…
	err = c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 2}, &EchoResp{})
	require.ErrorIs(t, err, spi.ErrUnavailable)

	// …and succeed again once the server is back on the same address.
	f2 := startServer(t, ServerOptions{}, addr)
	_ = f2
	require.Eventually(t, func() bool {
		var r EchoResp
		return c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 3}, &r) == nil && r.ID == 3
	}, 3*time.Second, 10*time.Millisecond)
}

func TestGracefulShutdownCompletesInFlight(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	const n = 5
	futs := make([]*Future, n)
	for i := range futs {
		futs[i] = c.Go(context.Background(), "Echo.Hold", &EchoReq{ID: i}, &EchoResp{})
	}
	for i := 0; i < n; i++ {
		<-f.svc.sleepStarted
	}
	shut := make(chan error, 1)
	go func() { shut <- f.srv.Shutdown(context.Background()) }()
	// New connections are refused once shutdown began.
	require.Eventually(t, func() bool {
		conn, err := net.Dial("tcp", f.addr)
		if err == nil {
			conn.Close()
		}
		return err != nil
	}, 2*time.Second, 5*time.Millisecond)
	select {
	case <-shut:
		t.Fatal("shutdown returned with calls in flight")
	default:
	}
	close(f.svc.release)
	for i, fu := range futs {
		require.NoError(t, fu.Wait())
		require.Equal(t, i, fu.Response.(*EchoResp).ID)
	}
	require.NoError(t, <-shut)
}

func TestShutdownDeadlineCancelsHandlers(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	fut := c.Go(context.Background(), "Echo.Sleep", &EchoReq{ID: 1}, &EchoResp{})
	<-f.svc.sleepStarted
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, f.srv.Shutdown(ctx), context.DeadlineExceeded)
	require.ErrorIs(t, <-f.svc.sleepDone, context.Canceled)
	require.ErrorIs(t, fut.Wait(), spi.ErrUnavailable)
}

func rawDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestMalformedAndOversizedFramesCloseOnlyThatConnection(t *testing.T) {
	f := startServer(t, ServerOptions{MaxFrame: 64 << 10}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 1}, &EchoResp{}))

	// Garbage: not even our magic.
	bad := rawDial(t, f.addr)
	_, err := bad.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	require.NoError(t, err)
	_ = bad.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = io.ReadAll(bad)
	require.NoError(t, err, "server must close the connection (EOF), not hang")

	// Oversized: a header announcing 1 GiB. The server answers GOAWAY with
	// ResourceExhausted and closes without reading (or allocating) the body.
	big := rawDial(t, f.addr)
	var h [protocol.HeaderSize]byte
	protocol.PutHeader(h[:], &protocol.Header{Version: protocol.Version, Type: protocol.TypeRequest, ID: 1, BodyLen: 1 << 30})
	_, err = big.Write(h[:])
	require.NoError(t, err)
	_ = big.SetReadDeadline(time.Now().Add(2 * time.Second))
	r := protocol.NewReader(big, 0, 0, 0)
	var fr protocol.Frame
	require.NoError(t, r.ReadFrame(&fr))
	require.Equal(t, protocol.TypeGoAway, fr.Type)
	var m protocol.Meta
	require.NoError(t, protocol.DecodeMeta(fr.Meta, &m))
	require.Equal(t, spi.ResourceExhausted, m.ErrCode)
	fr.Release()
	require.Error(t, r.ReadFrame(&fr)) // then closed

	// The well-behaved client's connection is untouched.
	var resp EchoResp
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 2}, &resp))
	require.Equal(t, 2, resp.ID)
}

func TestVersionMismatchGetsErrorFrame(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	conn := rawDial(t, f.addr)
	var h [protocol.HeaderSize]byte
	protocol.PutHeader(h[:], &protocol.Header{Version: 7, Type: protocol.TypeRequest, ID: 99})
	_, err := conn.Write(h[:])
	require.NoError(t, err)
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	r := protocol.NewReader(conn, 0, 0, 0)
	var fr protocol.Frame
	require.NoError(t, r.ReadFrame(&fr))
	require.Equal(t, protocol.TypeResponse, fr.Type)
	require.Equal(t, uint32(99), fr.ID)
	var m protocol.Meta
	require.NoError(t, protocol.DecodeMeta(fr.Meta, &m))
	require.Equal(t, spi.Unimplemented, m.ErrCode)
	require.Contains(t, string(m.ErrMessage), "version 7")
	fr.Release()
}

func TestConcurrencyLimitGivesResourceExhausted(t *testing.T) {
	f := startServer(t, ServerOptions{MaxConcurrency: 2}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	a := c.Go(context.Background(), "Echo.Hold", &EchoReq{ID: 1}, &EchoResp{})
	b := c.Go(context.Background(), "Echo.Hold", &EchoReq{ID: 2}, &EchoResp{})
	<-f.svc.sleepStarted
	<-f.svc.sleepStarted
	err := c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 3}, &EchoResp{})
	require.ErrorIs(t, err, spi.ErrResourceExhausted)
	close(f.svc.release)
	require.NoError(t, a.Wait())
	require.NoError(t, b.Wait())
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 4}, &EchoResp{}))
}

func TestHeartbeatDetectsDeadPeer(t *testing.T) {
	// A "server" that accepts and then never says anything.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			accepted <- conn
		}
	}()
	c := newClient(t, ClientOptions{Targets: []string{ln.Addr().String()}, HeartbeatInterval: 30 * time.Millisecond, HeartbeatTimeout: 60 * time.Millisecond})
	fut := c.Go(context.Background(), "Echo.Echo", &EchoReq{ID: 1}, &EchoResp{})
	conn := <-accepted
	defer conn.Close()
	go func() { _, _ = io.Copy(io.Discard, conn) }()
	start := time.Now()
	err = fut.Wait()
	require.ErrorIs(t, err, spi.ErrUnavailable)
	require.Contains(t, err.Error(), "heartbeat")
	require.Less(t, time.Since(start), time.Second)
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "kite.sock")
	f := startServer(t, ServerOptions{}, "unix:"+sock)
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	var resp EchoResp
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 5, Text: "u"}, &resp))
	require.Equal(t, 5, resp.ID)
}

type recordFilter struct {
	name string
	log  *[]string
	mu   *sync.Mutex
	deny bool
}

func (r recordFilter) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		r.mu.Lock()
		*r.log = append(*r.log, r.name+">"+call.Side.String())
		r.mu.Unlock()
		if r.deny {
			return spi.Errorf(spi.PermissionDenied, "denied by %s", r.name)
		}
		if call.Side == spi.ClientSide {
			if call.Meta == nil {
				call.Meta = &spi.Metadata{}
			}
			call.Meta.Set("x-"+r.name, "1")
		}
		return next(ctx, call)
	}
}

func TestFiltersOrderMetadataAndShortCircuit(t *testing.T) {
	var mu sync.Mutex
	var log []string
	var seenMeta string
	probe := spi.FilterFunc(func(next spi.Invoker) spi.Invoker {
		return func(ctx context.Context, call *spi.Call) error {
			mu.Lock()
			seenMeta = call.Meta.Get("x-a") + call.Meta.Get("x-b")
			mu.Unlock()
			return next(ctx, call)
		}
	})
	f := startServer(t, ServerOptions{Filters: []spi.Filter{recordFilter{name: "s1", log: &log, mu: &mu}, probe}}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}, Filters: []spi.Filter{
		recordFilter{name: "a", log: &log, mu: &mu}, recordFilter{name: "b", log: &log, mu: &mu},
	}})
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 1}, &EchoResp{}))
	mu.Lock()
	require.Equal(t, []string{"a>client", "b>client", "s1>server"}, log)
	require.Equal(t, "11", seenMeta)
	mu.Unlock()

	deny := newClient(t, ClientOptions{Targets: []string{f.addr}, Filters: []spi.Filter{recordFilter{name: "gate", log: &log, mu: &mu, deny: true}}})
	err := deny.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 1}, &EchoResp{})
	require.ErrorIs(t, err, spi.ErrPermissionDenied)
}

func TestMetadataFromContextReachesHandler(t *testing.T) {
	srv, err := NewServer(ServerOptions{Catalog: testCatalog(), Logger: quiet})
	require.NoError(t, err)
	got := make(chan string, 1)
	require.NoError(t, srv.RegisterService(&ServiceDesc{Name: "Meta", Methods: []MethodDesc{{
		Name:       "Get",
		NewRequest: func() any { return new(EchoReq) },
		Handler: func(ctx context.Context, _ any, req any) (any, error) {
			got <- CallFromContext(ctx).Meta.Get("tenant")
			return &EchoResp{}, nil
		},
	}}}, nil))
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	require.NoError(t, err)
	defer srv.Close()
	c := newClient(t, ClientOptions{Targets: []string{ln.Addr().String()}})
	md := &spi.Metadata{}
	md.Set("tenant", "acme")
	require.NoError(t, c.Call(WithMetadata(context.Background(), md), "Meta.Get", &EchoReq{}, &EchoResp{}))
	require.Equal(t, "acme", <-got)
}

func TestBidiWithMismatchedWindows(t *testing.T) {
	f := startServer(t, ServerOptions{StreamWindow: 128}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}, StreamWindow: 16})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.Stream(ctx, "Echo.Chat")
	require.NoError(t, err)
	// Send far more than either window before reading anything back.
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < 300; i++ {
			if err := st.Send(&EchoReq{ID: i}); err != nil {
				sent <- err
				return
			}
		}
		sent <- st.CloseSend()
	}()
	for i := 0; i < 300; i++ {
		var r EchoResp
		require.NoError(t, st.Recv(&r))
		require.Equal(t, i, r.ID)
	}
	require.NoError(t, <-sent)
	require.ErrorIs(t, st.Recv(&EchoResp{}), io.EOF)
}

func TestRefusedStreamOpenReportsStatus(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, m := range []string{"Echo.NoSuch", "Echo.Echo"} { // unknown; unary called as a stream
		st, err := c.Stream(ctx, m)
		require.NoError(t, err)
		start := time.Now()
		err = st.Recv(&EchoResp{})
		require.ErrorIs(t, err, spi.ErrUnimplemented, m)
		require.Less(t, time.Since(start), time.Second, "the refusal must arrive, not the deadline")
	}
}

func TestPlaintextIsAnnounced(t *testing.T) {
	var buf syncBuffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:0", "serving plaintext TCP on loopback"},
		{"0.0.0.0:0", "PLAINTEXT TCP on a non-loopback address"},
	} {
		srv, err := NewServer(ServerOptions{Catalog: testCatalog(), Logger: log})
		require.NoError(t, err)
		_, err = srv.Listen(context.Background(), tc.addr, nil)
		require.NoError(t, err)
		require.Contains(t, buf.String(), tc.want)
		require.NoError(t, srv.Close())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// Close racing the start of Serve must not hang: the janitor loop once
// read its stop channel after Close had taken it and ran forever.
func TestCloseRightAfterListen(t *testing.T) {
	for range 300 {
		srv, err := NewServer(ServerOptions{Catalog: testCatalog()})
		require.NoError(t, err)
		_, err = srv.Listen(context.Background(), "127.0.0.1:0", nil)
		require.NoError(t, err)
		closed := make(chan struct{})
		go func() {
			_ = srv.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not return")
		}
	}
}
