package core

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
)

// oneShotRegistry serves one fixed snapshot to every watch, then blocks
// until the watch's context ends.
type oneShotRegistry struct{ ins []spi.Instance }

func (r *oneShotRegistry) Register(context.Context, spi.Instance) error   { return nil }
func (r *oneShotRegistry) Deregister(context.Context, spi.Instance) error { return nil }
func (r *oneShotRegistry) Resolve(context.Context, string) ([]spi.Instance, error) {
	return r.ins, nil
}
func (r *oneShotRegistry) Close() error { return nil }
func (r *oneShotRegistry) Watch(context.Context, string) (spi.Watcher, error) {
	return &oneShotWatcher{ins: r.ins, stop: make(chan struct{})}, nil
}

type oneShotWatcher struct {
	ins  []spi.Instance
	sent bool
	stop chan struct{}
}

func (w *oneShotWatcher) Next(ctx context.Context) ([]spi.Instance, error) {
	if !w.sent {
		w.sent = true
		return w.ins, nil
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-w.stop:
		return nil, spi.Errorf(spi.Unavailable, "stopped")
	}
}
func (w *oneShotWatcher) Stop() { close(w.stop) }

// SetDiscovery moves a running client from targets to other targets, to a
// registry and back, with calls succeeding throughout and connections to
// instances left behind retired.
func TestSetDiscovery(t *testing.T) {
	a := startServer(t, ServerOptions{}, "")
	b := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{a.addr}})
	call := func() {
		t.Helper()
		require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{ID: 1}, &EchoResp{}))
	}
	call()
	require.Equal(t, 1, a.srv.Conns())

	require.NoError(t, c.SetDiscovery(Discovery{Targets: []string{b.addr}}))
	call()
	require.Equal(t, 1, b.srv.Conns(), "calls go to the new target")
	require.Eventually(t, func() bool { return a.srv.Conns() == 0 }, 3*time.Second, 5*time.Millisecond, "the old target's pool is retired")

	reg := &oneShotRegistry{ins: []spi.Instance{{Service: "echo", Addr: a.addr}}}
	require.NoError(t, c.SetDiscovery(Discovery{Service: "echo", Registry: reg}))
	require.Eventually(t, func() bool {
		ins := c.Instances()
		return len(ins) == 1 && ins[0].Addr == a.addr
	}, 3*time.Second, 5*time.Millisecond, "the registry's snapshot replaces the targets")
	call()
	require.Equal(t, 1, a.srv.Conns())
	require.Eventually(t, func() bool { return b.srv.Conns() == 0 }, 3*time.Second, 5*time.Millisecond)
	require.Contains(t, c.String(), "via registry")

	// Registry to registry: the first watch is stopped, the second applies.
	reg2 := &oneShotRegistry{ins: []spi.Instance{{Service: "echo", Addr: b.addr}}}
	require.NoError(t, c.SetDiscovery(Discovery{Service: "echo", Registry: reg2}))
	require.Eventually(t, func() bool {
		ins := c.Instances()
		return len(ins) == 1 && ins[0].Addr == b.addr
	}, 3*time.Second, 5*time.Millisecond)
	call()

	require.Error(t, c.SetDiscovery(Discovery{}), "neither targets nor registry")
	require.Error(t, c.SetDiscovery(Discovery{Registry: reg}), "a registry needs a service")
	require.NoError(t, c.Close())
	require.ErrorIs(t, c.SetDiscovery(Discovery{Targets: []string{a.addr}}), spi.ErrUnavailable)
}

// A running client moved from one fixed target to a registry, as a
// kite.hcl reload does when the client's discovery changes: the calls go
// where the new source points, with no new client.
func ExampleClient_SetDiscovery() {
	start := func(name string) (*Server, string) {
		srv, _ := NewServer(ServerOptions{Catalog: testCatalog(), Logger: quiet})
		_ = srv.Register("Flaky", &flaky{name: name})
		ln, _ := srv.Listen(context.Background(), "127.0.0.1:0", nil)
		return srv, ln.Addr().String()
	}
	blue, blueAddr := start("blue")
	defer blue.Close()
	green, greenAddr := start("green")
	defer green.Close()

	c, _ := NewClient(ClientOptions{Targets: []string{blueAddr}, Catalog: testCatalog(), Logger: quiet})
	defer c.Close()
	call := func() {
		var resp EchoResp
		err := c.Call(context.Background(), "Flaky.Do", &EchoReq{}, &resp)
		fmt.Println(resp.Text, err)
	}
	call()

	reg := &oneShotRegistry{ins: []spi.Instance{{Service: "flaky", Addr: greenAddr}}}
	_ = c.SetDiscovery(Discovery{Service: "flaky", Registry: reg})
	for len(c.Instances()) != 1 || c.Instances()[0].Addr != greenAddr {
		time.Sleep(time.Millisecond) // the new registry's first snapshot
	}
	call()
	// Output:
	// blue <nil>
	// green <nil>
}
