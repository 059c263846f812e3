package faults

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

// TestFilterPluginChannel serves a Kite server whose filter runs out of
// process on the filter channel (spi/plugin's test filter: stamps
// x-stamp, denies Stamp.Denied, panics on Stamp.Boom) and calls it over
// loopback: sequential and 16 concurrent callers each see their own
// metadata carried through; a refusal reaches the remote caller with its
// code and message; the filter's panic reaches it as a generic Internal
// without the panic value; a SIGKILL of the plugin under load fails calls
// closed (Unavailable, no call reaches the handler unfiltered) until the
// supervisor has restarted it, on the channel again.
func TestFilterPluginChannel(t *testing.T) {
	bin := buildMain(t, "spi/plugin/testdata/testplugin")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	entry, proc, err := plugin.Load(ctx, plugin.Decl{
		Kind: spi.KindFilter, Name: "guard", Path: bin, SHA256: sha256File(t, bin), Args: []string{"filter"},
	}, testLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = proc.Close() })
	v, err := entry.New(spi.Config(`{"deny":["Stamp.Denied"],"stamp":"kite","panic_on":"Stamp.Boom"}`))
	require.NoError(t, err)
	require.True(t, proc.FilterChannel(), "the plugin's filter calls use the channel")

	var unfiltered atomic.Int64 // calls that reached the handler without the stamp
	get := func(ctx context.Context, _ any, req any) (any, error) {
		m := core.CallFromContext(ctx).Meta
		if m.Get("x-stamp") != "kite" {
			unfiltered.Add(1)
		}
		return &EchoResp{Seq: req.(*EchoReq).Seq, Server: m.Get("x-stamp") + "|" + m.Get("x-id")}, nil
	}
	srv, err := core.NewServer(core.ServerOptions{Logger: testLogger(), Filters: []spi.Filter{v.(spi.Filter)}})
	require.NoError(t, err)
	methods := []core.MethodDesc{}
	for _, name := range []string{"Get", "Denied", "Boom"} {
		methods = append(methods, core.MethodDesc{Name: name, NewRequest: func() any { return new(EchoReq) }, Handler: get})
	}
	require.NoError(t, srv.RegisterService(&core.ServiceDesc{Name: "Stamp", Methods: methods}, nil))
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	c := newClient(t, core.ClientOptions{Targets: []string{ln.Addr().String()}})

	call := func(ctx context.Context, method string, id int) (*EchoResp, error) {
		md := &spi.Metadata{}
		md.Set("x-id", strconv.Itoa(id))
		var resp EchoResp
		err := c.Call(core.WithMetadata(ctx, md), "Stamp."+method, &EchoReq{Seq: id}, &resp)
		if err == nil && resp.Server != "kite|"+strconv.Itoa(id) {
			return nil, fmt.Errorf("call %d: the handler saw %q", id, resp.Server)
		}
		return &resp, err
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ccancel()

	for i := range 20 {
		_, err := call(cctx, "Get", i)
		require.NoError(t, err)
	}
	_, err = call(cctx, "Denied", 1)
	require.ErrorIs(t, err, spi.ErrPermissionDenied)
	assert.Contains(t, err.Error(), "method Stamp.Denied is denied")
	_, err = call(cctx, "Boom", 1)
	require.ErrorIs(t, err, spi.ErrInternal)
	assert.NotContains(t, err.Error(), "secret-in-panic", "the panic value stays in the plugin's log")
	assert.Contains(t, err.Error(), "incident")

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				if _, err := call(cctx, "Get", 1000*w+i); err != nil {
					errs <- err
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
	require.Zero(t, unfiltered.Load())

	// SIGKILL under load.
	l := startLoad(t, 8, 2*time.Second, func(ctx context.Context, seq int) error {
		_, err := call(ctx, "Get", seq)
		return err
	})
	waitFor(t, 5*time.Second, "load running", func() bool { return l.snapshot().Codes[spi.OK] >= 50 })
	pid := proc.Pid()
	require.NotZero(t, pid)
	killed := time.Now()
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	waitFor(t, pluginRestartBound, "the plugin restarted", func() bool {
		return proc.Running() && proc.Restarts() >= 1 && proc.Pid() != pid
	})
	okAtRestart := l.snapshot().Codes[spi.OK]
	waitFor(t, 5*time.Second, "calls succeed again", func() bool { return l.snapshot().Codes[spi.OK] > okAtRestart+50 })
	t.Logf("filter plugin back %s after SIGKILL", time.Since(killed).Round(time.Millisecond))
	r := l.finish(t)
	assert.Zero(t, r.Lost, "lost calls")
	assert.Empty(t, r.errorsOtherThan(spi.Unavailable), "calls failed only with Unavailable while the plugin was down")
	if n := r.Codes[spi.Unavailable]; n > 0 {
		assert.Contains(t, r.Samples[spi.Unavailable], "plugin filter/guard")
	}
	assert.Zero(t, unfiltered.Load(), "no call reached the handler without the filter")
	assert.True(t, proc.FilterChannel(), "the restarted plugin is on the channel again")
}
