package zookeeper

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// zkAddr returns the ZooKeeper server of the test environment.
func zkAddr(t *testing.T) string {
	t.Helper()
	return testkit.Env(t, "KITE_ZK_ADDR", "run `bash scripts/services.sh up && source .kite/services.env` (make test does)")
}

// testRoot returns a root znode unique to this test, removed afterwards,
// so runs can share one server.
func testRoot(t *testing.T) string {
	t.Helper()
	addr := zkAddr(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	root := "/kite-test-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(discard{}))
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer conn.Close()
		if err := deleteTree(conn, root); err != nil {
			t.Errorf("cleanup of %s: %v", root, err)
		}
	})
	return root
}

type discard struct{}

func (discard) Printf(string, ...any) {}

func deleteTree(conn *zk.Conn, path string) error {
	children, _, err := conn.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := deleteTree(conn, path+"/"+c); err != nil {
			return err
		}
	}
	if err := conn.Delete(path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return nil
}

func newTest(t *testing.T, c Config) *Registry {
	t.Helper()
	r, err := New(c)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

func TestConformance(t *testing.T) {
	addr := zkAddr(t)
	root := testRoot(t)
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		r, err := New(Config{Servers: []string{addr}, Root: root})
		require.NoError(t, err)
		return r
	})
}

// cutter is a dialer that can cut the client off from ZooKeeper: it
// closes the open connections and refuses new ones until restored.
type cutter struct {
	mu      sync.Mutex
	cut     bool
	conns   []net.Conn
	refused int // dials refused while cut
}

func (c *cutter) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		c.refused++
		return nil, errors.New("test: network cut")
	}
	conn, err := net.DialTimeout(network, addr, timeout)
	if err == nil {
		c.conns = append(c.conns, conn)
	}
	return conn, err
}

func (c *cutter) set(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
	if cut {
		for _, conn := range c.conns {
			conn.Close()
		}
		c.conns = nil
	}
}

// nextUntil reads snapshots until one equals want and returns those seen
// before it.
func nextUntil(t *testing.T, w spi.Watcher, want ...spi.Instance) [][]spi.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var seen [][]spi.Instance
	for {
		got, err := w.Next(ctx)
		require.NoError(t, err, "waiting for %v; saw %v", want, seen)
		if registrykit.Equal(got, want) {
			return seen
		}
		seen = append(seen, got)
	}
}

func inst(service string, port int) spi.Instance {
	return spi.Instance{Service: service, Addr: net.JoinHostPort("127.0.0.1", itoa(port)), Weight: port % 7, Tags: []string{"t"}}
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func TestSessionExpiryIsRecovered(t *testing.T) {
	addr := zkAddr(t)
	root := testRoot(t)
	net := &cutter{}
	// A 1s session (the server's minimum with services.sh's tickTime) makes
	// expiry quick; a server with a larger minimum only makes this slower.
	server := newTest(t, Config{Servers: []string{addr}, Root: root, SessionTimeout: "1s", dialer: net.dial})
	observer := newTest(t, Config{Servers: []string{addr}, Root: root})
	ctx := context.Background()

	in1, in2 := inst("user", 9001), inst("user", 9002)
	require.NoError(t, server.Register(ctx, in1))
	require.NoError(t, server.Register(ctx, in2))
	seenBy := func(r *Registry) spi.Watcher {
		w, err := r.Watch(ctx, "user")
		require.NoError(t, err)
		t.Cleanup(w.Stop)
		nextUntil(t, w, in1, in2)
		return w
	}
	wObs := seenBy(observer)
	wCut := seenBy(server) // a watch through the client that loses its session

	net.set(true)
	// While cut off: calls fail with Unavailable, and the watch keeps its
	// last snapshot instead of reporting an empty service.
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := server.Resolve(rctx, "user")
	cancel()
	require.Error(t, err)
	assert.Equal(t, spi.Unavailable, spi.CodeOf(err), "%v", err)
	quiet, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	got, err := wCut.Next(quiet)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a cut-off watch delivered %v", got)

	// ZooKeeper expires the session and deletes its ephemeral nodes.
	expired := time.Now()
	nextUntil(t, wObs)
	t.Logf("session expired on the server %v after the cut", time.Since(expired))
	assert.Equal(t, int64(0), server.Expiries())

	// Reconnected, the client learns its session is gone, opens a new one
	// and re-creates its nodes.
	net.set(false)
	restored := time.Now()
	nextUntil(t, wObs, in1, in2)
	t.Logf("instances re-registered %v after the network came back", time.Since(restored))
	assert.Equal(t, int64(1), server.Expiries())

	// The cut-off watch was re-armed on the new session.
	in3 := inst("user", 9003)
	require.NoError(t, observer.Register(ctx, in3))
	nextUntil(t, wCut, in1, in2, in3)

	// And the recovered client works as before.
	require.NoError(t, server.Deregister(ctx, in1))
	nextUntil(t, wObs, in2, in3)
}

func TestReconnectKeepsSessionAndWatches(t *testing.T) {
	addr := zkAddr(t)
	root := testRoot(t)
	net := &cutter{}
	server := newTest(t, Config{Servers: []string{addr}, Root: root, SessionTimeout: "20s", dialer: net.dial})
	observer := newTest(t, Config{Servers: []string{addr}, Root: root})
	ctx := context.Background()

	in1 := inst("user", 9101)
	require.NoError(t, server.Register(ctx, in1))
	wObs, err := observer.Watch(ctx, "user")
	require.NoError(t, err)
	defer wObs.Stop()
	nextUntil(t, wObs, in1)
	wCut, err := server.Watch(ctx, "user")
	require.NoError(t, err)
	defer wCut.Stop()
	nextUntil(t, wCut, in1)

	net.set(true)
	require.Eventually(t, func() bool { return server.conn.State() != zk.StateHasSession },
		10*time.Second, 10*time.Millisecond, "the cut is noticed")
	// A change made while the client is away is delivered after it
	// reconnects: the session and its watches survived.
	in2 := inst("user", 9102)
	require.NoError(t, observer.Register(ctx, in2))
	net.set(false)
	seen := nextUntil(t, wCut, in1, in2)
	assert.Empty(t, seen)
	assert.Equal(t, int64(0), server.Expiries())

	// in1 never left: the observer saw only the addition.
	seen = nextUntil(t, wObs, in1, in2)
	for _, s := range seen {
		assert.True(t, slices.ContainsFunc(s, func(x spi.Instance) bool { return registrykit.Same(x, in1) }), "in1 missing from %v", s)
	}
}

func TestRegisterTakesOverAnotherSessionsNode(t *testing.T) {
	addr := zkAddr(t)
	root := testRoot(t)
	ctx := context.Background()
	old := newTest(t, Config{Servers: []string{addr}, Root: root})
	restarted := newTest(t, Config{Servers: []string{addr}, Root: root})
	in := inst("user", 9201)
	require.NoError(t, old.Register(ctx, in))
	in.Version = "v2"
	require.NoError(t, restarted.Register(ctx, in))
	// The old session ending must not take the new registration with it.
	require.NoError(t, old.Close())
	got, err := restarted.Resolve(ctx, "user")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, got)
}

func TestForeignNodesAreIgnored(t *testing.T) {
	addr := zkAddr(t)
	root := testRoot(t)
	ctx := context.Background()
	r := newTest(t, Config{Servers: []string{addr}, Root: root})
	in := inst("user", 9301)
	require.NoError(t, r.Register(ctx, in))
	_, err := r.conn.Create(root+"/services/user/not-kite", []byte("hello"), 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	got, err := r.Resolve(ctx, "user")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, got)
	w, err := r.Watch(ctx, "user")
	require.NoError(t, err)
	defer w.Stop()
	nextUntil(t, w, in)
}

func TestLayout(t *testing.T) {
	addr := zkAddr(t)
	root := testRoot(t)
	ctx := context.Background()
	r := newTest(t, Config{Servers: []string{addr}, Root: root})
	in := spi.Instance{Service: "a/b", Addr: "unix:///run/kite.sock"}
	require.NoError(t, r.Register(ctx, in))
	path := root + "/services/a%2Fb/unix:%2F%2F%2Frun%2Fkite.sock"
	_, stat, err := r.conn.Get(path)
	require.NoError(t, err)
	assert.Equal(t, r.conn.SessionID(), stat.EphemeralOwner, "instance nodes are ephemeral")
	_, stat, err = r.conn.Get(root + "/services/a%2Fb")
	require.NoError(t, err)
	assert.Zero(t, stat.EphemeralOwner, "parents are persistent")
	assert.Equal(t, "%2E.", escape(".."))
}

func TestConfig(t *testing.T) {
	addr := zkAddr(t)
	v, err := spi.Default.Build(spi.KindRegistry, Name, spi.Config(`{"servers":["`+addr+`"],"session_timeout":"5s","root":"/kite-cfg"}`))
	require.NoError(t, err)
	r := v.(*Registry)
	assert.Equal(t, "/kite-cfg/services", r.services)
	require.NoError(t, r.Close())
	require.NoError(t, r.Close(), "Close twice is fine")
	err = r.Register(context.Background(), inst("user", 1))
	assert.Equal(t, spi.FailedPrecondition, spi.CodeOf(err))

	for _, tc := range []struct{ cfg, want string }{
		{`{}`, "servers is required"},
		{`{"servers":[""]}`, `servers[0] "": empty`},
		{`{"servers":["x"],"session_timeout":"long"}`, "session_timeout"},
		{`{"servers":["x"],"session_timeout":"1ms"}`, "too short"},
		{`{"servers":["x"],"root":"kite"}`, "absolute znode path"},
		{`{"servers":["x"],"root":"/kite/"}`, "absolute znode path"},
		{`{"servers":["x"],"timeout":"1s"}`, "unknown field"},
	} {
		_, err := spi.Default.Build(spi.KindRegistry, Name, spi.Config(tc.cfg))
		if assert.Error(t, err, tc.cfg) {
			assert.Contains(t, err.Error(), tc.want, tc.cfg)
		}
	}
}

func TestUnreachableServer(t *testing.T) {
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := l.Addr().String()
	l.Close()
	r := newTest(t, Config{Servers: []string{dead}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = r.Register(ctx, inst("user", 1))
	assert.Equal(t, spi.Unavailable, spi.CodeOf(err), "%v", err)
	_, err = r.Watch(ctx, "user")
	assert.Equal(t, spi.Unavailable, spi.CodeOf(err), "%v", err)
}

func TestErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want spi.Code
	}{
		{zk.ErrNoServer, spi.Unavailable},
		{zk.ErrConnectionClosed, spi.Unavailable},
		{zk.ErrSessionExpired, spi.Unavailable},
		{&net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}, spi.Unavailable},
		{zk.ErrClosing, spi.FailedPrecondition},
		{zk.ErrNoAuth, spi.PermissionDenied},
		{zk.ErrInvalidPath, spi.InvalidArgument},
		{zk.ErrNotEmpty, spi.Internal},
		{context.DeadlineExceeded, spi.DeadlineExceeded},
	} {
		err := wrap(tc.err, "doing %s", "x")
		assert.Equal(t, tc.want, spi.CodeOf(err), "%v", tc.err)
		assert.ErrorIs(t, err, tc.err)
	}
	assert.NoError(t, wrap(nil, "x"))
}

func (c *cutter) refusedDials() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused
}

// TestOperationsRideThroughAReconnect: an operation that meets a lost
// connection waits for the client to reconnect (within the session
// timeout) instead of failing, as during an ensemble's leader election.
// Before, Register, Deregister and Resolve failed at once with
// Unavailable ("could not connect to a server", "connection closed")
// and tests/cluster/ensemble's leader-kill scenario lost registrations.
func TestOperationsRideThroughAReconnect(t *testing.T) {
	addr := zkAddr(t)
	root := testRoot(t)
	net := &cutter{}
	r := newTest(t, Config{Servers: []string{addr}, Root: root, SessionTimeout: "20s", dialer: net.dial})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	in1, in2 := inst("ride", 9201), inst("ride", 9202)
	require.NoError(t, r.Register(ctx, in1))

	net.set(true)
	require.Eventually(t, func() bool { return r.conn.State() != zk.StateHasSession },
		10*time.Second, 10*time.Millisecond, "the cut is noticed")
	results := make(chan error, 3)
	go func() { results <- r.Register(ctx, in2) }()
	go func() { results <- r.Deregister(ctx, in1) }()
	go func() {
		_, err := r.Resolve(ctx, "ride")
		results <- err
	}()
	// The client library flushes queued requests with ErrNoServer each
	// time it has tried every server; after two rounds of refused dials
	// the operations have met that error at least once.
	base := net.refusedDials()
	require.Eventually(t, func() bool { return net.refusedDials() >= base+2 },
		10*time.Second, 10*time.Millisecond, "the client retries its servers")
	select {
	case err := <-results:
		t.Fatalf("an operation returned while the client was cut off: %v", err)
	default:
	}
	net.set(false)
	for range 3 {
		require.NoError(t, <-results)
	}
	got, err := r.Resolve(ctx, "ride")
	require.NoError(t, err)
	assert.True(t, registrykit.Equal(got, []spi.Instance{in2}), "after the reconnect: %v", got)
	assert.Equal(t, int64(0), r.Expiries())
}
