package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/health"
	"github.com/kiterpc/kite/spi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// jsonCodec keeps this package's tests free of plugin imports.
type jsonCodec struct{}

func (jsonCodec) Name() string { return "json" }
func (jsonCodec) ID() uint8    { return spi.CodecJSON }
func (jsonCodec) Marshal(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// serve starts a core server with the health service on loopback and a
// client to it; both stop when the test ends.
func serve(t *testing.T, h *health.Service) (*core.Server, *core.Client) {
	t.Helper()
	srv, err := core.NewServer(core.ServerOptions{Codecs: []spi.Codec{jsonCodec{}}})
	require.NoError(t, err)
	require.NoError(t, health.Register(srv, h))
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	require.NoError(t, err)
	c, err := core.NewClient(core.ClientOptions{Targets: []string{ln.Addr().String()}, Codec: jsonCodec{}})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = c.Close()
		_ = srv.Close()
	})
	return srv, c
}

func TestCheckOverTheWire(t *testing.T) {
	h := health.NewService()
	_, c := serve(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	st, err := health.Check(ctx, c, "")
	require.NoError(t, err)
	assert.Equal(t, health.Serving, st, "a new service reports the server as SERVING")

	_, err = health.Check(ctx, c, "Users")
	assert.True(t, errors.Is(err, spi.ErrNotFound), "unknown service: %v", err)

	h.SetServing("Users", false)
	st, err = health.Check(ctx, c, "Users")
	require.NoError(t, err)
	assert.Equal(t, health.NotServing, st)
	h.SetServing("Users", true)
	st, err = health.Check(ctx, c, "Users")
	require.NoError(t, err)
	assert.Equal(t, health.Serving, st)
	assert.Equal(t, []string{"Users"}, h.Services())

	// The generic call path with an empty JSON object is what
	// `kite call <client> Health.Check '{}'` sends.
	var raw map[string]any
	require.NoError(t, c.Call(ctx, "Health.Check", map[string]any{}, &raw))
	assert.Equal(t, map[string]any{"status": "SERVING"}, raw)
}

// TestShortNameFindsTheOneFullName: Check and Watch of "Inventory" find
// "eco.v1.Inventory" (a proto service known by its full name) while it is
// the only one of that short name, as a call's short method name does.
func TestShortNameFindsTheOneFullName(t *testing.T) {
	h := health.NewService()
	_, c := serve(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.SetServing("eco.v1.Inventory", true)
	st, err := health.Check(ctx, c, "Inventory")
	require.NoError(t, err)
	assert.Equal(t, health.Serving, st)
	w, err := health.Watch(ctx, c, "Inventory")
	require.NoError(t, err)
	st, err = w.Next()
	require.NoError(t, err)
	assert.Equal(t, health.Serving, st)

	h.SetServing("eco.v2.Inventory", false) // now ambiguous
	_, err = health.Check(ctx, c, "Inventory")
	assert.ErrorIs(t, err, spi.ErrNotFound)
	st, err = w.Next()
	require.NoError(t, err)
	assert.Equal(t, health.ServiceUnknown, st, "an ambiguous short name is not known")
	_, err = health.Check(ctx, c, "v1.Inventory")
	assert.ErrorIs(t, err, spi.ErrNotFound, "only a name without dots is short")
	st, err = health.Check(ctx, c, "eco.v2.Inventory")
	require.NoError(t, err)
	assert.Equal(t, health.NotServing, st)
}

func TestShutdownIsSticky(t *testing.T) {
	h := health.NewService()
	h.SetServing("A", true)
	h.Shutdown()
	assert.True(t, h.ShuttingDown())
	h.SetServing("A", true)
	h.SetServing("", true)
	assert.Equal(t, map[string]health.Status{"": health.NotServing, "A": health.NotServing}, h.Statuses())
	h.Resume() // as grpc-go's: every status SERVING again
	assert.Equal(t, map[string]health.Status{"": health.Serving, "A": health.Serving}, h.Statuses())
	assert.False(t, h.ShuttingDown())
	h.SetServing("A", false)
	st, _ := h.Status("A")
	assert.Equal(t, health.NotServing, st, "statuses change again after Resume")
}

// TestWatchStaysOpenAcrossShutdownAndResume: over Kite's protocol, a
// watch of a service not known yet sends SERVICE_UNKNOWN and stays open;
// health Shutdown sends NOT_SERVING and Resume SERVING on the same
// stream (as gRPC's health server); the server's own Shutdown ends it
// (NOT_SERVING, then EOF) without holding the drain.
func TestWatchStaysOpenAcrossShutdownAndResume(t *testing.T) {
	h := health.NewService()
	srv, c := serve(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	w, err := health.Watch(ctx, c, "Orders")
	require.NoError(t, err)
	next := func() health.Status {
		t.Helper()
		st, err := w.Next()
		require.NoError(t, err)
		return st
	}
	assert.Equal(t, health.ServiceUnknown, next(), "a service not known yet")
	h.SetServing("Orders", true)
	assert.Equal(t, health.Serving, next(), "the watch of an unknown service stayed open")
	h.SetServing("Other", false) // another service's change is not reported
	h.SetServing("Orders", false)
	assert.Equal(t, health.NotServing, next())
	h.SetServing("Orders", true)
	assert.Equal(t, health.Serving, next())

	h.Shutdown()
	assert.Equal(t, health.NotServing, next())
	h.SetServing("Orders", true) // ignored while shut down
	h.Resume()
	assert.Equal(t, health.Serving, next(), "Resume sets SERVING on the open stream")

	// The server stopping ends the watch: NOT_SERVING, then EOF, and the
	// graceful shutdown is not held by it.
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(sctx) }()
	assert.Equal(t, health.NotServing, next())
	_, err = w.Next()
	assert.ErrorIs(t, err, io.EOF, "the watch ends when the server stops")
	require.NoError(t, <-done, "a watch held the drain to its deadline")
	assert.Less(t, time.Since(start), 2*time.Second)
}

func TestWatchEndsWhenTheCallerCancels(t *testing.T) {
	h := health.NewService()
	_, c := serve(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := health.Watch(ctx, c, "")
	require.NoError(t, err)
	st, err := w.Next()
	require.NoError(t, err)
	assert.Equal(t, health.Serving, st)
	cancel()
	_, err = w.Next()
	require.Error(t, err)
	// goleak (TestMain) checks that the server side's handler returned.
}

func TestManyWatchersSeeTheLatestStatus(t *testing.T) {
	h := health.NewService()
	const n = 50
	type result struct {
		last health.Status
		err  error
	}
	results := make(chan result, n)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stop := make(chan struct{})
	for range n {
		go func() {
			var last health.Status
			err := h.WatchUntil(ctx, "S", stop, func(r *health.CheckResponse) error { last = r.Status; return nil })
			results <- result{last, err}
		}()
	}
	for i := range 100 {
		h.SetServing("S", i%2 == 0)
	}
	h.Shutdown()
	close(stop)
	for range n {
		r := <-results
		require.NoError(t, r.err)
		assert.Equal(t, health.NotServing, r.last)
	}
}
