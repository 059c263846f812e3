package etcd

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kiterpc/kite/spi"
)

// TestLayout reads what Register wrote with a plain etcd client: the key
// <prefix>/<service>/<addr>, the instance JSON as docs/REGISTRIES.md
// shows it, attached to the registry's lease. Other frameworks' layouts
// are compared there.
func TestLayout(t *testing.T) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "/kite-layout-" + hex.EncodeToString(b[:]) + "/services"
	r, err := New(Config{Endpoints: []string{etcdAddr(t)}, TTL: "5s", DialTimeout: "2s", Prefix: prefix + "/"})
	require.NoError(t, err)
	defer r.Close()
	ctx := ctxT(t)
	in := spi.Instance{Service: "user", Addr: "10.0.0.5:9000", Weight: 100, Version: "v1", Zone: "a",
		Tags: []string{"canary"}, Metadata: map[string]string{"k": "v"}}
	require.NoError(t, r.Register(ctx, in))

	cli := rawClient(t)
	resp, err := cli.Get(ctx, prefix+"/", clientv3.WithPrefix())
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	kv := resp.Kvs[0]
	assert.Equal(t, prefix+"/user/10.0.0.5:9000", string(kv.Key))
	assert.JSONEq(t, `{"service":"user","addr":"10.0.0.5:9000","weight":100,"version":"v1","zone":"a","tags":["canary"],"metadata":{"k":"v"}}`, string(kv.Value))
	require.NotZero(t, kv.Lease, "instance keys live on a lease")
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
	require.NoError(t, err)
	assert.Equal(t, int64(5), ttl.GrantedTTL)

	require.NoError(t, r.Close())
	resp, err = cli.Get(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.Zero(t, resp.Count, "Close revokes the lease: nothing is left behind")

	o, err := Config{Endpoints: []string{"127.0.0.1:2379"}}.options()
	require.NoError(t, err)
	assert.Equal(t, "/kite/services", o.prefix, "the default prefix")
}
