package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// kitexValue is the value kitex-contrib/registry-etcd writes and reads
// (its instanceInfo, common.go @da79456), declared here as Kitex
// declares it so the tests check the wire form, not this package's.
type kitexValue struct {
	Network string            `json:"network"`
	Address string            `json:"address"`
	Weight  int               `json:"weight"`
	Tags    map[string]string `json:"tags"`
}

// kitexPrefix is a prefix of Kitex's form (no leading slash) unique to
// the test, whose keys are deleted afterwards.
func kitexPrefix(t *testing.T) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := "kitex-test-" + hex.EncodeToString(b[:]) + "/registry-etcd"
	cli := rawClient(t)
	t.Cleanup(func() { _, _ = cli.Delete(ctxT(t), p+"/", clientv3.WithPrefix()) })
	return p
}

func newKitexLayout(t *testing.T, prefix string) *Registry {
	t.Helper()
	r, err := New(Config{Endpoints: []string{etcdAddr(t)}, TTL: "5s", DialTimeout: "2s", Layout: "kitex", Prefix: prefix})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// TestKitexLayoutConformance: Kite processes on the Kitex layout still
// behave as every registry must, fields round-tripping through Kitex's
// tags.
func TestKitexLayoutConformance(t *testing.T) {
	addr := etcdAddr(t)
	prefix := kitexPrefix(t)
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		r, err := New(Config{Endpoints: []string{addr}, TTL: "5s", DialTimeout: "2s", Layout: "kitex", Prefix: prefix})
		require.NoError(t, err)
		return r
	})
}

// TestKitexLayoutWritesWhatKitexReads: the key and value of a Kite
// instance are those Kitex's resolver lists under
// <prefix>/<service>/ and decodes.
func TestKitexLayoutWritesWhatKitexReads(t *testing.T) {
	prefix := kitexPrefix(t)
	r := newKitexLayout(t, prefix)
	ctx := ctxT(t)
	require.NoError(t, r.Register(ctx, spi.Instance{Service: "echo", Addr: "10.0.0.5:8888", Weight: 10,
		Version: "v2", Tags: []string{"canary"}, Metadata: map[string]string{"cluster": "a"}}))
	require.NoError(t, r.Register(ctx, spi.Instance{Service: "echo", Addr: "unix:///run/echo.sock"}))

	resp, err := rawClient(t).Get(ctx, prefix+"/echo/", clientv3.WithPrefix())
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 2)
	got := map[string]kitexValue{}
	for _, kv := range resp.Kvs {
		var v kitexValue
		require.NoError(t, json.Unmarshal(kv.Value, &v), string(kv.Value))
		got[string(kv.Key)] = v
		assert.NotZero(t, kv.Lease)
	}
	assert.Equal(t, map[string]kitexValue{
		prefix + "/echo/10.0.0.5:8888": {Network: "tcp", Address: "10.0.0.5:8888", Weight: 10,
			Tags: map[string]string{"cluster": "a", "kite.version": "v2", "kite.tags": `["canary"]`}},
		prefix + "/echo//run/echo.sock": {Network: "unix", Address: "/run/echo.sock", Tags: map[string]string{}},
	}, got)
	assert.NotEqual(t, '/', prefix[0], "Kitex's prefix has no leading slash, and neither do the keys")
}

// TestKitexLayoutReadsWhatKitexWrites puts keys as Kitex's register()
// does (json.Marshal of its instanceInfo, on a lease) and follows them
// through Resolve and Watch; a Kite-layout registry looking at the same
// keys skips them (mixed layouts do not share discovery).
func TestKitexLayoutReadsWhatKitexWrites(t *testing.T) {
	prefix := kitexPrefix(t)
	ctx := ctxT(t)
	cli := rawClient(t)
	lease, err := cli.Grant(ctx, 60)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = cli.Revoke(ctxT(t), lease.ID) })
	val, err := json.Marshal(kitexValue{Network: "tcp", Address: "10.0.0.6:8888", Weight: 10, Tags: map[string]string{"env": "prod"}})
	require.NoError(t, err)
	key := prefix + "/echo/10.0.0.6:8888"
	_, err = cli.Put(ctx, key, string(val), clientv3.WithLease(lease.ID))
	require.NoError(t, err)

	r := newKitexLayout(t, prefix)
	kitexSrv := spi.Instance{Service: "echo", Addr: "10.0.0.6:8888", Weight: 10, Metadata: map[string]string{"env": "prod"}}
	list, err := r.Resolve(ctx, "echo")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{kitexSrv}, list)

	w, err := r.Watch(ctx, "echo")
	require.NoError(t, err)
	defer w.Stop()
	next := func() []spi.Instance {
		c, cancel := ctxWithin(t, 10*time.Second)
		defer cancel()
		got, err := w.Next(c)
		require.NoError(t, err)
		return got
	}
	assert.Equal(t, []spi.Instance{kitexSrv}, next())
	kiteSrv := spi.Instance{Service: "echo", Addr: "10.0.0.7:8888", Weight: 10}
	require.NoError(t, newKitexLayout(t, prefix).Register(ctx, kiteSrv))
	assert.Equal(t, []spi.Instance{kitexSrv, kiteSrv}, next(), "Kite and Kitex servers side by side")
	_, err = cli.Delete(ctx, key) // the Kitex server deregisters
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{kiteSrv}, next())

	// The same keys through Kite's own layout: nothing decodes.
	_, err = cli.Put(ctx, key, string(val), clientv3.WithLease(lease.ID))
	require.NoError(t, err)
	own, err := New(Config{Endpoints: []string{etcdAddr(t)}, TTL: "5s", DialTimeout: "2s", Prefix: "/" + prefix})
	require.NoError(t, err)
	defer own.Close()
	own.opts.prefix = prefix // Kite's layout forces a leading slash; point it at Kitex's keys anyway
	list, err = own.Resolve(ctx, "echo")
	require.NoError(t, err)
	assert.Empty(t, list, "a Kite-layout client does not read Kitex values")
}

func TestKitexLayoutOptions(t *testing.T) {
	o, err := Config{Endpoints: []string{"127.0.0.1:2379"}, Layout: "kitex"}.options()
	require.NoError(t, err)
	assert.Equal(t, "kitex/registry-etcd", o.prefix, "Kitex's default prefix, as Kitex writes it")
	o, err = Config{Endpoints: []string{"127.0.0.1:2379"}, Layout: "kitex", Prefix: "/svc/"}.options()
	require.NoError(t, err)
	assert.Equal(t, "/svc", o.prefix)
	_, err = Config{Endpoints: []string{"127.0.0.1:2379"}, Layout: "dubbo"}.options()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `layout "dubbo" is not one of "kite", "kitex"`)
	var fe *spi.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "layout", fe.Field)
}

func ctxWithin(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	t.Helper()
	return context.WithTimeout(t.Context(), d)
}
