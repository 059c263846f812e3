package core

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
)

// rejectRecorder is a filter that passes calls through and records the
// rejections its server reports.
type rejectRecorder struct {
	mu   sync.Mutex
	seen []spi.Rejection
	sig  chan struct{}
}

func newRejectRecorder() *rejectRecorder { return &rejectRecorder{sig: make(chan struct{}, 64)} }

func (r *rejectRecorder) Wrap(next spi.Invoker) spi.Invoker { return next }

func (r *rejectRecorder) CallRejected(x *spi.Rejection) {
	r.mu.Lock()
	r.seen = append(r.seen, *x)
	r.mu.Unlock()
	r.sig <- struct{}{}
}

// next waits for the next rejection.
func (r *rejectRecorder) next(t *testing.T) spi.Rejection {
	t.Helper()
	select {
	case <-r.sig:
	case <-time.After(5 * time.Second):
		t.Fatal("no rejection reported")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	x := r.seen[0]
	r.seen = r.seen[1:]
	return x
}

// TestRejectionsReachObservers: every way a server refuses a call before
// its filter chain (unknown method, wrong kind, admission, an expired
// deadline, draining) is reported to the filters that observe, with the
// status the caller got.
func TestRejectionsReachObservers(t *testing.T) {
	rec := newRejectRecorder()
	f := startServer(t, ServerOptions{MaxConcurrency: 1, Filters: []spi.Filter{rec}}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	ctx := context.Background()

	err := c.Call(ctx, "Echo.Nope", &EchoReq{}, &EchoResp{})
	require.ErrorIs(t, err, spi.ErrUnimplemented)
	r := rec.next(t)
	require.Equal(t, "Echo.Nope", r.Method)
	require.False(t, r.Known)
	require.Equal(t, spi.ReasonUnknownMethod, r.Reason)
	require.Equal(t, spi.Unimplemented, spi.CodeOf(r.Err))
	require.Equal(t, "", r.Protocol)
	require.Contains(t, r.Peer, "127.0.0.1:")

	err = c.Call(ctx, "Echo.Count", &EchoReq{}, &EchoResp{})
	require.ErrorIs(t, err, spi.ErrUnimplemented)
	r = rec.next(t)
	require.Equal(t, "Echo.Count", r.Method)
	require.True(t, r.Known)
	require.Equal(t, spi.ReasonWrongKind, r.Reason)

	// One call holds the only slot: the next is refused at admission.
	held := c.Go(ctx, "Echo.Hold", &EchoReq{ID: 1}, &EchoResp{})
	<-f.svc.sleepStarted
	err = c.Call(ctx, "Echo.Echo", &EchoReq{}, &EchoResp{})
	require.ErrorIs(t, err, spi.ErrResourceExhausted)
	r = rec.next(t)
	require.Equal(t, "Echo.Echo", r.Method)
	require.Equal(t, spi.ReasonConcurrency, r.Reason)
	require.Equal(t, spi.ResourceExhausted, spi.CodeOf(r.Err))
	close(f.svc.release)
	require.NoError(t, held.Wait())
	// The slot is given back just after the answer is written.
	require.Eventually(t, func() bool { return f.srv.InFlight() == 0 }, 5*time.Second, time.Millisecond)

	// A request whose deadline had passed when it arrived (a raw frame:
	// Kite's client does not send those).
	conn := rawDial(t, f.addr)
	var fb protocol.Builder
	fb.Begin(protocol.TypeRequest, 0, spi.CodecRaw, 0, 7)
	fb.B = protocol.AppendMethod(fb.B, "Echo.Echo")
	fb.B = protocol.AppendTimeout(fb.B, 0)
	fb.EndMeta()
	_, err = conn.Write(append([]byte(nil), fb.Finish()...))
	fb.Release()
	require.NoError(t, err)
	// (Its answer is dropped: the caller gave up already.)
	r = rec.next(t)
	require.Equal(t, spi.ReasonDeadline, r.Reason)
	require.Equal(t, "Echo.Echo", r.Method)

	// Draining: a call arriving after GOAWAY on an open connection (a
	// server of its own: the first one's Hold was released).
	rec = newRejectRecorder()
	g := startServer(t, ServerOptions{Filters: []spi.Filter{rec}}, "")
	conn = rawDial(t, g.addr)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rd := protocol.NewReader(conn, 0, 0, 0)
	var fr protocol.Frame
	hold := rawRequest(8, "Echo.Hold", 0, []byte(`{"id":8}`))
	hold[5] = spi.CodecJSON
	_, err = conn.Write(hold)
	require.NoError(t, err)
	select {
	case <-g.svc.sleepStarted:
	case <-time.After(5 * time.Second):
		t.Fatal("the held call did not start")
	}
	shut := make(chan error, 1)
	go func() { shut <- g.srv.Shutdown(context.Background()) }()
	for {
		require.NoError(t, rd.ReadFrame(&fr))
		away := fr.Type == protocol.TypeGoAway
		fr.Release()
		if away {
			break
		}
	}
	_, err = conn.Write(rawRequest(9, "Echo.Echo", 0, []byte(`{}`)))
	require.NoError(t, err)
	r = rec.next(t)
	require.Equal(t, spi.ReasonShuttingDown, r.Reason)
	require.Equal(t, spi.Unavailable, spi.CodeOf(r.Err))
	close(g.svc.release)
	require.NoError(t, <-shut)
}

// TestBodyMemoryRejectionReported: a request that does not fit the
// server's body memory is refused before the chain and reported so.
func TestBodyMemoryRejectionReported(t *testing.T) {
	rec := newRejectRecorder()
	f := startServer(t, ServerOptions{BodyMemory: 4 << 10, Filters: []spi.Filter{rec}}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	big := &EchoReq{Text: strings.Repeat("x", 64<<10)}
	err := c.Call(context.Background(), "Echo.Echo", big, &EchoResp{})
	require.ErrorIs(t, err, spi.ErrResourceExhausted)
	r := rec.next(t)
	require.Equal(t, spi.ReasonBodyMemory, r.Reason)
	require.Equal(t, "Echo.Echo", r.Method)
	require.True(t, r.Known)
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "small"}, &EchoResp{}), "small calls still fit")
}
