package plugin

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin/internal/testplugins"
)

// exchanges is how many requests the host sent on p's filter channel.
func exchanges(p *Process) uint64 {
	g, err := p.current()
	if err != nil || g.fchan.Load() == nil {
		return 0
	}
	return g.fchan.Load().next.Load()
}

// A before-only filter costs one exchange per call; what it does before
// next (stamp, refuse) crosses, and nothing after next happens: the
// trailer and the chain's error come back as they were.
func TestFilterChannelBeforeOnly(t *testing.T) {
	v, p := load(t, spi.KindFilter, `{"deny":["Admin.Drop"],"stamp":"kite","before_only":true}`)
	require.True(t, p.FilterChannel())
	f := v.(spi.Filter)
	var backendErr error
	invoke := spi.Chain(func(_ context.Context, call *spi.Call) error {
		call.Trailer.Set("x-backend", call.Meta.Get("x-stamp"))
		return backendErr
	}, f)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	newCall := func(method string) *spi.Call {
		return &spi.Call{Side: spi.ServerSide, Method: method, Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
	}
	n0 := exchanges(p)
	call := newCall("User.Get")
	require.NoError(t, invoke(ctx, call))
	assert.Equal(t, "kite", call.Meta.Get("x-stamp"))
	assert.Equal(t, "kite", call.Trailer.Get("x-backend"))
	assert.Equal(t, "", call.Trailer.Get("x-result"), "nothing runs after next")
	assert.Equal(t, uint64(1), exchanges(p)-n0, "one exchange per call")

	backendErr = spi.Errorf(spi.Internal, "db down")
	err := invoke(ctx, newCall("User.Get"))
	assert.ErrorIs(t, err, spi.ErrInternal, "the chain's error comes back unchanged")
	assert.Contains(t, err.Error(), "db down")
	assert.ErrorIs(t, invoke(ctx, newCall("Admin.Drop")), spi.ErrPermissionDenied)
	assert.Equal(t, uint64(3), exchanges(p)-n0)

	// The full filter takes two.
	v2, p2 := load(t, spi.KindFilter, `{"stamp":"kite"}`)
	n0 = exchanges(p2)
	require.NoError(t, spi.Chain(func(context.Context, *spi.Call) error { return nil }, v2.(spi.Filter))(ctx, newCall("User.Get")))
	assert.Equal(t, uint64(2), exchanges(p2)-n0, "before and after")
}

// Sixteen callers share the channel: every call gets its own metadata,
// result and trailer back.
func TestFilterChannelConcurrent(t *testing.T) {
	v, p := load(t, spi.KindFilter, `{"deny":["Admin.Drop"],"stamp":"kite"}`)
	require.True(t, p.FilterChannel())
	invoke := spi.Chain(func(_ context.Context, call *spi.Call) error {
		id, _ := strconv.Atoi(call.Meta.Get("x-id"))
		call.Trailer.Set("x-id", call.Meta.Get("x-id"))
		if id%3 == 0 {
			return spi.Errorf(spi.NotFound, "no %d", id)
		}
		return nil
	}, v.(spi.Filter))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				id := w*1000 + i
				method := "User.Get"
				if i%7 == 6 {
					method = "Admin.Drop"
				}
				call := &spi.Call{Side: spi.ServerSide, Method: method, Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
				call.Meta.Set("x-id", strconv.Itoa(id))
				err := invoke(ctx, call)
				var want spi.Code
				switch {
				case method == "Admin.Drop":
					want = spi.PermissionDenied
				case id%3 == 0:
					want = spi.NotFound
				}
				if spi.CodeOf(err) != want {
					errs <- fmt.Errorf("call %d (%s): got %v, want %s", id, method, err, want)
					return
				}
				if want == spi.PermissionDenied {
					continue
				}
				if got := call.Trailer.Get("x-id"); got != strconv.Itoa(id) {
					errs <- fmt.Errorf("call %d: trailer of call %s", id, got)
					return
				}
				if got := call.Trailer.Get("x-result"); got != want.String() {
					errs <- fmt.Errorf("call %d: x-result %s, want %s", id, got, want)
					return
				}
				if call.Meta.Get("x-stamp") != "kite" || call.Meta.Get("x-id") != strconv.Itoa(id) {
					errs <- fmt.Errorf("call %d: metadata %v/%v", id, call.Meta.Get("x-stamp"), call.Meta.Get("x-id"))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A filter's panic reaches the host as a generic Internal error with an
// incident id; the panic value stays in the plugin's log.
func TestFilterChannelPanic(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Decl)
	}{{"channel", nil}, {"grpc", func(d *Decl) { d.NoFilterChannel = true }}} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := loadWith(t, spi.KindFilter, `{"stamp":"kite","panic_on":"User.Boom"}`, tc.edit)
			invoke := spi.Chain(func(context.Context, *spi.Call) error { return nil }, v.(spi.Filter))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := invoke(ctx, &spi.Call{Side: spi.ServerSide, Method: "User.Boom", Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}})
			require.ErrorIs(t, err, spi.ErrInternal)
			assert.NotContains(t, err.Error(), "secret-in-panic")
			assert.Contains(t, err.Error(), "incident")
			// The plugin goes on serving.
			assert.NoError(t, invoke(ctx, &spi.Call{Side: spi.ServerSide, Method: "User.Get", Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}))
		})
	}
}

// The channel's socket serves only a host that knows the token from Info,
// and is gone once the host has connected.
func TestFilterChannelRefusesWrongToken(t *testing.T) {
	e, _ := testpluginsEntry(t)
	srv := newServer(e, testLogger())
	srv.openChannel()
	require.NotNil(t, srv.channel)
	defer srv.closeChannel()
	addr := srv.channel.info.Address

	hello := func(token []byte) error {
		c, err := net.Dial("unix", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Write(helloFrame(token))
		require.NoError(t, err)
		// An unknown handle gets a fail answer on a connection that was
		// let in; a connection that was refused is closed instead.
		b, _ := appendFrame(nil, 1, frameBefore, func(b []byte) []byte { return putUv(b, 99) })
		_, _ = c.Write(b)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var hdr [frameHeader]byte
		_, typ, _, err := readFrame(bufio.NewReader(c), &hdr)
		if err == nil && typ != frameFail {
			return fmt.Errorf("answer of type %d", typ)
		}
		return err
	}
	err := hello(make([]byte, 32))
	require.Error(t, err, "a wrong token is refused")
	var ne net.Error
	assert.False(t, asNetTimeout(err, &ne), "closed, not silent: %v", err)
	require.NoError(t, hello(srv.channel.token), "the right token is let in")
	_, err = net.Dial("unix", addr)
	assert.Error(t, err, "once the host is in, the socket is gone")
	_, err = os.Stat(filepath.Dir(addr))
	assert.True(t, os.IsNotExist(err), "and so is its directory: %v", err)
}

// A loaded filter plugin's socket is gone as soon as the host connected.
func TestFilterChannelSocketGoneAfterConnect(t *testing.T) {
	_, p := load(t, spi.KindFilter, `{}`)
	g, err := p.current()
	require.NoError(t, err)
	require.NotNil(t, g.fchan.Load())
	_, err = os.Stat(g.chanDir)
	assert.True(t, os.IsNotExist(err), "socket directory %s removed by the plugin: %v", g.chanDir, err)
}

func testpluginsEntry(t *testing.T) (spi.Entry, bool) {
	t.Helper()
	e, ok := testplugins.Lookup(spi.KindFilter)
	require.True(t, ok)
	return e, ok
}

func asNetTimeout(err error, ne *net.Error) bool {
	if e, ok := err.(net.Error); ok {
		*ne = e
		return e.Timeout()
	}
	return false
}

// A caller that gives up while the plugin's filter is still deciding gets
// its context's error at once; the plugin is told to stop the call, and
// the channel goes on serving.
func TestFilterChannelCallerGivesUp(t *testing.T) {
	v, p := load(t, spi.KindFilter, `{"stamp":"kite","block_on":"User.Slow"}`)
	require.True(t, p.FilterChannel())
	invoke := spi.Chain(func(context.Context, *spi.Call) error { return nil }, v.(spi.Filter))
	for _, cancelled := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		if cancelled {
			go func() { time.Sleep(50 * time.Millisecond); cancel() }()
		}
		start := time.Now()
		err := invoke(ctx, &spi.Call{Side: spi.ServerSide, Method: "User.Slow", Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}})
		cancel()
		want := spi.ErrDeadlineExceeded
		if cancelled {
			want = spi.ErrCanceled
		}
		assert.ErrorIs(t, err, want)
		assert.Less(t, time.Since(start), 2*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	call := &spi.Call{Side: spi.ServerSide, Method: "User.Get", Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
	require.NoError(t, invoke(ctx, call))
	assert.Equal(t, "kite", call.Meta.Get("x-stamp"))
	g, err := p.current()
	require.NoError(t, err)
	g.fchan.Load().mu.Lock()
	defer g.fchan.Load().mu.Unlock()
	assert.Empty(t, g.fchan.Load().pending, "no call left waiting")
}

// If the channel breaks while the plugin runs on, calls fail closed
// until the host notices, then go to the plugin over gRPC.
func TestFilterChannelBrokenFallsBackToGRPC(t *testing.T) {
	v, p := load(t, spi.KindFilter, `{"stamp":"kite","deny":["Admin.Drop"]}`)
	g, err := p.current()
	require.NoError(t, err)
	fc := g.fchan.Load()
	require.NotNil(t, fc)
	invoke := spi.Chain(func(context.Context, *spi.Call) error { return nil }, v.(spi.Filter))
	newCall := func(method string) *spi.Call {
		return &spi.Call{Side: spi.ServerSide, Method: method, Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pid := p.Pid()
	require.NoError(t, fc.conn.Close())
	<-fc.done
	err = invoke(ctx, newCall("User.Get"))
	assert.ErrorIs(t, err, spi.ErrUnavailable, "the call on the broken channel fails closed")
	assert.False(t, p.FilterChannel(), "the host gave the channel up")
	call := newCall("User.Get")
	require.NoError(t, invoke(ctx, call))
	assert.Equal(t, "kite", call.Meta.Get("x-stamp"))
	assert.ErrorIs(t, invoke(ctx, newCall("Admin.Drop")), spi.ErrPermissionDenied)
	assert.Equal(t, pid, p.Pid(), "same process")
	assert.Zero(t, p.Restarts())
}
