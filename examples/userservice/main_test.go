package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/internal/gen"
	"github.com/kiterpc/kite/spi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startServer serves impl with the generated registration (or with
// core's reflective Register when reflective is set) on a loopback port.
func startServer(tb testing.TB, impl UserService, reflective bool) string {
	tb.Helper()
	srv, err := core.NewServer(core.ServerOptions{})
	require.NoError(tb, err)
	if reflective {
		require.NoError(tb, srv.Register("UserService", impl))
	} else {
		require.NoError(tb, RegisterUserService(srv, impl))
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0")
	require.NoError(tb, err)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(tb, srv.Shutdown(ctx))
	})
	return ln.Addr().String()
}

// dial returns the generated UserService client for addr.
func dial(tb testing.TB, addr string) UserService {
	tb.Helper()
	c, err := core.NewClient(core.ClientOptions{Targets: []string{addr}})
	require.NoError(tb, err)
	tb.Cleanup(func() { c.Close() })
	return NewUserServiceClient(c)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestGetByID is the acceptance call: a typed method call on the
// UserService interface that travels over a real loopback connection.
func TestGetByID(t *testing.T) {
	users := dial(t, startServer(t, newStore(), false))
	u, err := users.GetByID(testContext(t), 1001)
	require.NoError(t, err)
	assert.Equal(t, &User{
		ID: 1001, Name: "Ada Lovelace", Email: "ada@example.com",
		Created: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
	}, u)
}

func TestErrorsKeepTheirCode(t *testing.T) {
	users := dial(t, startServer(t, newStore(), false))
	ctx := testContext(t)

	_, err := users.GetByID(ctx, 42)
	require.Error(t, err)
	assert.True(t, errors.Is(err, spi.ErrNotFound), "got %v", err)
	assert.Contains(t, err.Error(), "no user with id 42")

	_, err = users.Create(ctx, &User{Name: "  "})
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err), "got %v", err)

	assert.Equal(t, spi.NotFound, spi.CodeOf(users.Delete(ctx, 42)))
}

func TestCreateGetDelete(t *testing.T) {
	users := dial(t, startServer(t, newStore(), false))
	ctx := testContext(t)

	created, err := users.Create(ctx, &User{Name: "Barbara Liskov", Email: "barbara@example.com"})
	require.NoError(t, err)
	assert.Equal(t, int64(1004), created.ID)
	assert.False(t, created.Created.IsZero())

	got, err := users.GetByID(ctx, created.ID)
	require.NoError(t, err)
	assert.Equal(t, created, got)

	// Delete returns only an error: the generated client sends the id and
	// decodes no body.
	require.NoError(t, users.Delete(ctx, created.ID))
	_, err = users.GetByID(ctx, created.ID)
	assert.True(t, errors.Is(err, spi.ErrNotFound))
}

func TestListStreams(t *testing.T) {
	users := dial(t, startServer(t, newStore(), false))
	ctx := testContext(t)

	var names []string
	require.NoError(t, users.List(ctx, &ListQuery{}, func(u *User) error {
		names = append(names, u.Name)
		return nil
	}))
	assert.Equal(t, []string{"Ada Lovelace", "Alan Turing", "Grace Hopper"}, names)

	names = nil
	require.NoError(t, users.List(ctx, &ListQuery{Prefix: "A", Limit: 1}, func(u *User) error {
		names = append(names, u.Name)
		return nil
	}))
	assert.Equal(t, []string{"Ada Lovelace"}, names)
}

// blockingLister streams users until its caller goes away, and reports
// that it saw the cancellation.
type blockingLister struct {
	*store
	cancelled chan struct{}
}

func (b *blockingLister) List(ctx context.Context, _ *ListQuery, send func(*User) error) error {
	defer close(b.cancelled)
	for i := int64(0); ; i++ {
		if err := send(&User{ID: i, Name: "u"}); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// TestListStopsEarly: an error from the caller's send ends the call with
// that error and cancels the stream on the server.
func TestListStopsEarly(t *testing.T) {
	impl := &blockingLister{store: newStore(), cancelled: make(chan struct{})}
	users := dial(t, startServer(t, impl, false))
	ctx := testContext(t)

	stop := errors.New("enough")
	var n int
	err := users.List(ctx, &ListQuery{}, func(*User) error {
		n++
		if n == 5 {
			return stop
		}
		return nil
	})
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 5, n)
	select {
	case <-impl.cancelled:
	case <-ctx.Done():
		t.Fatal("the server's List never saw the cancellation")
	}
	// The connection is still good for ordinary calls.
	u, err := users.GetByID(ctx, 1001)
	require.NoError(t, err)
	assert.Equal(t, "Ada Lovelace", u.Name)
}

func TestDescriptor(t *testing.T) {
	d := UserService_ServiceDesc
	assert.Equal(t, "UserService", d.Name)
	idem := map[string]bool{}
	for _, m := range d.Methods {
		idem[m.Name] = m.Idempotent
	}
	// Only GetByID carries //kite:idempotent.
	assert.Equal(t, map[string]bool{"GetByID": true, "Create": false, "Delete": false}, idem)
	require.Len(t, d.Streams, 1)
	assert.Equal(t, "List", d.Streams[0].Name)
	// A non-pointer parameter is decoded into a fresh *int64.
	_, ok := d.Methods[0].NewRequest().(*int64)
	assert.True(t, ok)
}

// TestStubsUpToDate regenerates the stubs in memory and compares them with
// the committed file, so an interface change without `go generate` fails.
func TestStubsUpToDate(t *testing.T) {
	f, err := gen.LoadInterface(gen.LoadOptions{Dir: ".", Type: "UserService", Output: "userservice_kite.go"})
	require.NoError(t, err)
	want, err := gen.Emit(f)
	require.NoError(t, err)
	got, err := os.ReadFile("userservice_kite.go")
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got), "userservice_kite.go is stale: run go generate ./examples/userservice")
}

// TestServerAndClientModes drives the program's two modes the way main
// does, over loopback.
func TestServerAndClientModes(t *testing.T) {
	// Take a free port, then let the server mode bind it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, addr, func(a string) { ready <- a }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("server mode failed: %v", err)
	}

	var out bytes.Buffer
	require.NoError(t, callOnce(addr, 1001, "G", 2*time.Second, &out))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2)
	var u User
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &u))
	assert.Equal(t, "Ada Lovelace", u.Name)
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &u))
	assert.Equal(t, "Grace Hopper", u.Name)

	err = callOnce(addr, 7, "", 2*time.Second, &out)
	assert.ErrorIs(t, err, spi.ErrNotFound)

	cancel()
	require.NoError(t, <-done)
}

func TestRunUsage(t *testing.T) {
	var out, errb bytes.Buffer
	assert.Equal(t, 2, run([]string{"-mode", "neither"}, &out, &errb))
	assert.Contains(t, errb.String(), "-mode must be server or client")
}

// TestGeneratedAndReflectiveAgree: both registrations answer the same.
func TestGeneratedAndReflectiveAgree(t *testing.T) {
	ctx := testContext(t)
	var seen atomic.Int32
	for _, reflective := range []bool{false, true} {
		users := dial(t, startServer(t, newStore(), reflective))
		u, err := users.GetByID(ctx, 1002)
		require.NoError(t, err)
		assert.Equal(t, "Alan Turing", u.Name)
		seen.Add(1)
	}
	assert.Equal(t, int32(2), seen.Load())
}
