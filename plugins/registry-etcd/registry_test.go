package etcd

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// etcdAddr returns the etcd the integration tests use, skipping the test
// when none is configured. CI always sets KITE_ETCD_ADDR (scripts/services.sh).
func etcdAddr(t *testing.T) string {
	t.Helper()
	return testkit.Env(t, "KITE_ETCD_ADDR", "run `bash scripts/services.sh up && source .kite/services.env` (make test does)")
}

// newTestRegistry builds a registry on the test etcd with a short lease.
func newTestRegistry(t *testing.T, ttl string) *Registry {
	t.Helper()
	r, err := New(Config{Endpoints: []string{etcdAddr(t)}, TTL: ttl, DialTimeout: "2s"})
	require.NoError(t, err)
	return r
}

// rawClient is a plain etcd client for inspecting and disturbing the store.
func rawClient(t *testing.T) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdAddr(t)}, DialTimeout: 2 * time.Second, Logger: newZapLogger(hclog.NewNullLogger())})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConformance(t *testing.T) {
	addr := etcdAddr(t)
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		r, err := New(Config{Endpoints: []string{addr}, TTL: "5s", DialTimeout: "2s"})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return r
	})
}

// crash simulates a process dying: its keepalives stop and its connection
// drops without revoking the lease or deleting anything.
func (r *Registry) crash() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	_ = r.cli.Close()
}

func TestLeaseExpiryRemovesDeadClient(t *testing.T) {
	const ttl = 2 * time.Second
	r := newTestRegistry(t, ttl.String())
	obs := newTestRegistry(t, "")
	t.Cleanup(func() { _ = obs.Close() })
	svc := "expiry-" + t.Name() + time.Now().Format("150405.000000")
	in := spi.Instance{Service: svc, Addr: "127.0.0.1:7001", Weight: 3}
	require.NoError(t, r.Register(ctxT(t), in))

	w, err := obs.Watch(ctxT(t), svc)
	require.NoError(t, err)
	defer w.Stop()
	got, err := w.Next(ctxT(t))
	require.NoError(t, err)
	require.Len(t, got, 1)

	crashed := time.Now()
	r.crash()
	// The key outlives the process until the lease runs out, then goes.
	got, err = w.Next(ctxT(t))
	require.NoError(t, err)
	assert.Empty(t, got)
	gone := time.Since(crashed)
	t.Logf("instance of a crashed client withdrawn %v after the crash (ttl %v)", gone.Round(10*time.Millisecond), ttl)
	assert.GreaterOrEqual(t, gone, ttl/2, "withdrawn before the lease could have expired: was it revoked?")
	assert.Less(t, gone, 3*ttl)
}

func TestReRegisterAfterLeaseRevoke(t *testing.T) {
	r := newTestRegistry(t, "3s")
	t.Cleanup(func() { _ = r.Close() })
	cli := rawClient(t)
	svc := "revoke-" + time.Now().Format("150405.000000")
	in1 := spi.Instance{Service: svc, Addr: "127.0.0.1:7101", Version: "v1"}
	in2 := spi.Instance{Service: svc, Addr: "127.0.0.1:7102", Tags: []string{"a"}}
	require.NoError(t, r.Register(ctxT(t), in1))
	require.NoError(t, r.Register(ctxT(t), in2))

	resp, err := cli.Get(ctxT(t), r.key(in1))
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	oldLease := clientv3.LeaseID(resp.Kvs[0].Lease)
	require.NotZero(t, oldLease)

	w, err := r.Watch(ctxT(t), svc)
	require.NoError(t, err)
	defer w.Stop()
	snap, err := w.Next(ctxT(t))
	require.NoError(t, err)
	require.Len(t, snap, 2)

	// Revoking deletes both keys at once; the registry notices through its
	// keepalive channel and writes them again under a new lease.
	_, err = cli.Revoke(ctxT(t), oldLease)
	require.NoError(t, err)
	sawEmpty := false
	for {
		snap, err = w.Next(ctxT(t))
		require.NoError(t, err)
		if len(snap) == 0 {
			sawEmpty = true
		}
		if len(snap) == 2 {
			break
		}
	}
	assert.True(t, sawEmpty, "the revoke should have been visible as an empty snapshot")
	assert.Equal(t, []spi.Instance{in1, in2}, snap)

	resp, err = cli.Get(ctxT(t), r.servicePrefix(svc), clientv3.WithPrefix())
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 2)
	newLease := clientv3.LeaseID(resp.Kvs[0].Lease)
	assert.NotEqual(t, oldLease, newLease)
	assert.Equal(t, newLease, clientv3.LeaseID(resp.Kvs[1].Lease))
	ttl, err := cli.TimeToLive(ctxT(t), newLease)
	require.NoError(t, err)
	assert.Positive(t, ttl.TTL, "the new lease is kept alive")

	// Deregistered instances are not brought back by a later re-grant.
	require.NoError(t, r.Deregister(ctxT(t), in1))
	_, err = cli.Revoke(ctxT(t), newLease)
	require.NoError(t, err)
	for {
		snap, err = w.Next(ctxT(t))
		require.NoError(t, err)
		if len(snap) == 1 {
			break
		}
	}
	assert.Equal(t, []spi.Instance{in2}, snap)
}

func TestRegisterAfterLeaseRevokedBehindItsBack(t *testing.T) {
	// A Register racing the keepalive's notice of a lost lease must still
	// succeed: the Put fails with "lease not found" and is retried.
	r := newTestRegistry(t, "3s")
	t.Cleanup(func() { _ = r.Close() })
	cli := rawClient(t)
	svc := "race-" + time.Now().Format("150405.000000")
	in1 := spi.Instance{Service: svc, Addr: "127.0.0.1:7201"}
	require.NoError(t, r.Register(ctxT(t), in1))
	r.leaseMu.Lock()
	lease := r.lease
	r.leaseMu.Unlock()
	_, err := cli.Revoke(ctxT(t), lease)
	require.NoError(t, err)
	in2 := spi.Instance{Service: svc, Addr: "127.0.0.1:7202"}
	require.NoError(t, r.Register(ctxT(t), in2))
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := r.Resolve(ctxT(t), svc)
		require.NoError(t, err)
		if len(got) == 2 {
			break
		}
		require.True(t, time.Now().Before(deadline), "both instances back within 10s, have %v", got)
		time.Sleep(20 * time.Millisecond) // polling etcd's state
	}
}

func TestWatchRelistsAfterCompaction(t *testing.T) {
	r := newTestRegistry(t, "")
	t.Cleanup(func() { _ = r.Close() })
	other := newTestRegistry(t, "")
	t.Cleanup(func() { _ = other.Close() })
	cli := rawClient(t)
	svc := "compact-" + time.Now().Format("150405.000000")

	// Take a snapshot, let the store move on and compact past it, then
	// follow from the old revision: etcd answers with ErrCompacted and the
	// watcher must list again instead of going silent.
	list, rev, err := r.list(ctxT(t), svc)
	require.NoError(t, err)
	require.Empty(t, list)
	in := spi.Instance{Service: svc, Addr: "127.0.0.1:7301", Zone: "z"}
	require.NoError(t, other.Register(ctxT(t), in))
	put, err := cli.Put(ctxT(t), "/kite-test/compact-filler", "x")
	require.NoError(t, err)
	_, err = cli.Compact(ctxT(t), put.Header.Revision)
	require.NoError(t, err)

	w, err := r.startWatcher(svc, list, rev)
	require.NoError(t, err)
	defer w.Stop()
	got, err := w.Next(ctxT(t))
	require.NoError(t, err)
	assert.Empty(t, got)
	got, err = w.Next(ctxT(t))
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{in}, got)
}

func TestResolveKeepsLastKnownWhenUnreachable(t *testing.T) {
	// Nothing listens on port 1 of loopback.
	r, err := New(Config{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: "200ms"})
	require.NoError(t, err)
	defer r.Close()

	_, err = r.Resolve(ctxT(t), "never-seen")
	require.Error(t, err)
	assert.Equal(t, spi.Unavailable, spi.CodeOf(err), "error %v", err)

	known := []spi.Instance{{Service: "seen", Addr: "127.0.0.1:7401"}}
	r.remember("seen", known)
	got, err := r.Resolve(ctxT(t), "seen")
	require.NoError(t, err)
	assert.Equal(t, known, got)

	_, err = r.Watch(ctxT(t), "seen")
	assert.Error(t, err, "a watch must start from a real list")
}

func TestRegisterFailsFastAfterClose(t *testing.T) {
	r, err := New(Config{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: "200ms"})
	require.NoError(t, err)
	// A Register blocked on an unreachable etcd must not hold up Close.
	done := make(chan error, 1)
	go func() {
		done <- r.Register(context.Background(), spi.Instance{Service: "s", Addr: "127.0.0.1:1"})
	}()
	time.Sleep(50 * time.Millisecond) // let Register reach etcd; not synchronisation of results
	require.NoError(t, r.Close())
	assert.Error(t, <-done)
	err = r.Register(ctxT(t), spi.Instance{Service: "s", Addr: "127.0.0.1:1"})
	assert.Equal(t, spi.FailedPrecondition, spi.CodeOf(err))
}

func TestInvalidInput(t *testing.T) {
	r, err := New(Config{Endpoints: []string{"127.0.0.1:1"}})
	require.NoError(t, err)
	defer r.Close()
	for _, in := range []spi.Instance{{Addr: "127.0.0.1:1"}, {Service: "a/b", Addr: "127.0.0.1:1"}, {Service: "a"}} {
		err := r.Register(ctxT(t), in)
		assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err), "%+v: %v", in, err)
	}
	_, err = r.Watch(ctxT(t), "")
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err))
}

func TestConfig(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "endpoints is required"},
		{Config{Endpoints: []string{" "}}, `endpoints[0] " ": empty`},
		{Config{Endpoints: []string{"x:1"}, TTL: "soon"}, "ttl"},
		{Config{Endpoints: []string{"x:1"}, TTL: "1s"}, "below the 2s minimum"},
		{Config{Endpoints: []string{"x:1"}, DialTimeout: "0s"}, "dial_timeout must be positive"},
		{Config{Endpoints: []string{"x:1"}, Username: "u"}, "username and password"},
	}
	for _, c := range cases {
		_, err := c.cfg.options()
		if assert.Error(t, err, "%+v", c.cfg) {
			assert.Contains(t, err.Error(), c.want)
		}
	}
	o, err := Config{Endpoints: []string{"x:1"}, Prefix: "custom/prefix/"}.options()
	require.NoError(t, err)
	assert.Equal(t, "/custom/prefix", o.prefix)
	assert.Equal(t, DefaultTTL, o.ttl)
	assert.Equal(t, DefaultDialTimeout, o.dialTimeout)
}

func TestCatalogEntry(t *testing.T) {
	e, ok := spi.Default.Lookup(spi.KindRegistry, Name)
	require.True(t, ok, "init registers the etcd registry")
	assert.Equal(t, Version, e.Version)
	names := map[string]bool{}
	for _, f := range e.Schema {
		names[f.Name] = true
	}
	for _, n := range []string{"endpoints", "ttl", "dial_timeout", "prefix", "username", "password"} {
		assert.True(t, names[n], "schema declares %s", n)
	}

	_, err := spi.Default.BuildRegistry(Name, spi.Config(`{"endpoints":["127.0.0.1:1"],"bogus":1}`))
	assert.ErrorContains(t, err, "bogus")

	cfg, _ := json.Marshal(map[string]any{"endpoints": []string{"127.0.0.1:1"}, "ttl": "3s"})
	reg, err := spi.Default.BuildRegistry(Name, cfg)
	require.NoError(t, err)
	require.NoError(t, reg.Close())
	require.NoError(t, reg.Close(), "Close is idempotent")
}
