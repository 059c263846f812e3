package zookeeper

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

const (
	alice   = "alice"
	alicepw = "wonder-land-7f3"
)

// authRoot is testRoot for trees whose nodes carry digest ACLs: the
// cleanup authenticates as alice, since world cannot delete them.
func authRoot(t *testing.T) string {
	t.Helper()
	root := testRoot(t)
	addr := zkAddr(t)
	// Registered after testRoot's cleanup, so it runs first.
	t.Cleanup(func() {
		conn := rawConn(t, addr, alice+":"+alicePw())
		if err := deleteTree(conn, root); err != nil {
			t.Errorf("cleanup of %s: %v", root, err)
		}
	})
	return root
}

func alicePw() string { return alicepw }

// rawConn is a plain client of the library, authenticated with digest
// cred unless it is "", closed when the test ends.
func rawConn(t *testing.T, addr, cred string) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(discard{}))
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	if cred != "" {
		require.NoError(t, conn.AddAuth("digest", []byte(cred)))
	}
	return conn
}

func authed(t *testing.T, root string, extra ...func(*Config)) *Registry {
	t.Helper()
	c := Config{Servers: []string{zkAddr(t)}, Root: root, Username: alice, Password: alicePw()}
	for _, f := range extra {
		f(&c)
	}
	return newTest(t, c)
}

// TestDigestAuthConformance runs the registry suite with every client
// authenticated as the same digest user: everything works through ACLs.
func TestDigestAuthConformance(t *testing.T) {
	addr := zkAddr(t)
	root := authRoot(t)
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		r, err := New(Config{Servers: []string{addr}, Root: root, Username: alice, Password: alicePw()})
		require.NoError(t, err)
		return r
	})
}

// TestDigestAuthNodesCarryTheACL: the right digest registers and reads,
// and every node the registry created, from the root down, carries
// digest:alice:<sha1> with all permissions plus world read.
func TestDigestAuthNodesCarryTheACL(t *testing.T) {
	root := authRoot(t)
	ctx := context.Background()
	r := authed(t, root)
	in := inst("user", 9001)
	require.NoError(t, r.Register(ctx, in))

	other := authed(t, root) // another process with the same credentials
	got, err := other.Resolve(ctx, "user")
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, in.Addr, got[0].Addr)

	want := append(zk.DigestACL(zk.PermAll, alice, alicePw()), zk.WorldACL(zk.PermRead)...)
	assert.Equal(t, "alice:", want[0].ID[:6])
	assert.NotContains(t, want[0].ID, alicePw(), "ZooKeeper stores a digest, not the password")
	own := rawConn(t, zkAddr(t), alice+":"+alicePw())
	anon := rawConn(t, zkAddr(t), "")
	for _, p := range []string{root, root + "/services", root + "/services/user", r.instancePath(in)} {
		acl, _, err := own.GetACL(p)
		require.NoError(t, err, p)
		assert.Equal(t, want, acl, p)
		// ZooKeeper (3.6+) shows the digest only to a client that may
		// administer the node.
		acl, _, err = anon.GetACL(p)
		require.NoError(t, err, p)
		assert.Equal(t, []zk.ACL{{Perms: zk.PermAll, Scheme: "digest", ID: "alice:x"}, {Perms: zk.PermRead, Scheme: "world", ID: "anyone"}}, acl, p)
	}
}

// TestDigestAuthOthersCannotModify: a client without credentials, and
// one with alice's name but a wrong password, can read (world read) but
// can neither delete, overwrite, take over nor add instances; each
// refusal is PermissionDenied with a message that says why, and the
// password is in none of them.
func TestDigestAuthOthersCannotModify(t *testing.T) {
	addr := zkAddr(t)
	root := authRoot(t)
	ctx := context.Background()
	owner := authed(t, root)
	in := inst("user", 9001)
	require.NoError(t, owner.Register(ctx, in))
	path := owner.instancePath(in)

	anon := newTest(t, Config{Servers: []string{addr}, Root: root})
	wrong := newTest(t, Config{Servers: []string{addr}, Root: root, Username: alice, Password: "guess-" + alicePw()[:4]})

	for name, r := range map[string]*Registry{"no credentials": anon, `digest user "alice"`: wrong} {
		got, err := r.Resolve(ctx, "user")
		require.NoError(t, err, "%s: world read lets anyone discover", name)
		require.Len(t, got, 1)

		for op, err := range map[string]error{
			"deregister": r.Deregister(ctx, in),
			"take over":  r.Register(ctx, spi.Instance{Service: "user", Addr: in.Addr, Weight: 1}),
			"add":        r.Register(ctx, inst("user", 9666)),
		} {
			require.Error(t, err, "%s: %s must be refused", name, op)
			assert.Equal(t, spi.PermissionDenied, spi.CodeOf(err), "%s %s: %v", name, op, err)
			assert.ErrorIs(t, err, zk.ErrNoAuth)
			msg := err.Error()
			assert.Contains(t, msg, "NoAuth", op)
			assert.Contains(t, msg, "ACL does not allow this client ("+name+")", op)
			assert.NotContains(t, msg, alicePw(), op)
			assert.NotContains(t, msg, "guess-", op)
		}
	}

	// The library itself, without the registry: set and delete refused.
	raw := rawConn(t, addr, "")
	_, err := raw.Set(path, []byte(`{"addr":"10.6.6.6:1"}`), -1)
	assert.ErrorIs(t, err, zk.ErrNoAuth, "set on the instance node")
	assert.ErrorIs(t, raw.Delete(path, -1), zk.ErrNoAuth, "delete of the instance node")
	assert.ErrorIs(t, raw.Delete(root+"/services/user", -1), zk.ErrNoAuth, "delete of the service node")
	_, err = raw.Create(root+"/services/user/10.6.6.6:1", []byte(`{"addr":"10.6.6.6:1"}`), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	assert.ErrorIs(t, err, zk.ErrNoAuth, "create under the service node")

	// Untouched: the owner still sees exactly its instance, and can
	// deregister it.
	got, err := owner.Resolve(ctx, "user")
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, in.Addr, got[0].Addr)
	assert.Equal(t, in.Weight, got[0].Weight)
	require.NoError(t, owner.Deregister(ctx, in))
	got, err = owner.Resolve(ctx, "user")
	require.NoError(t, err)
	assert.Empty(t, got)
}

// TestDigestAuthPrivateRead: world_read = false hides the instances from
// clients without the credentials.
func TestDigestAuthPrivateRead(t *testing.T) {
	addr := zkAddr(t)
	root := authRoot(t)
	ctx := context.Background()
	f := false
	owner := authed(t, root, func(c *Config) { c.WorldRead = &f })
	require.NoError(t, owner.Register(ctx, inst("user", 9001)))

	anon := newTest(t, Config{Servers: []string{addr}, Root: root})
	_, err := anon.Resolve(ctx, "user")
	require.Error(t, err)
	assert.Equal(t, spi.PermissionDenied, spi.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), `resolving "user": ZooKeeper refused it (NoAuth)`)
	_, err = anon.Watch(ctx, "user")
	require.Error(t, err)
	assert.Equal(t, spi.PermissionDenied, spi.CodeOf(err), "%v", err)

	got, err := authed(t, root).Resolve(ctx, "user")
	require.NoError(t, err)
	assert.Len(t, got, 1)
}

// TestDigestAuthSurvivesSessionExpiry: after a real session expiry the
// library re-sends the credentials on the new session and the registry
// re-creates its nodes with the ACL.
func TestDigestAuthSurvivesSessionExpiry(t *testing.T) {
	root := authRoot(t)
	cut := &cutter{}
	ctx := context.Background()
	server := authed(t, root, func(c *Config) { c.SessionTimeout = "1s"; c.dialer = cut.dial })
	observer := authed(t, root)
	in := inst("user", 9001)
	require.NoError(t, server.Register(ctx, in))
	w, err := observer.Watch(ctx, "user")
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	nextUntil(t, w, in)

	cut.set(true)
	nextUntil(t, w) // expired: the ephemeral node is gone
	cut.set(false)
	nextUntil(t, w, in)
	assert.Equal(t, int64(1), server.Expiries())

	acl, _, err := rawConn(t, zkAddr(t), alice+":"+alicePw()).GetACL(server.instancePath(in))
	require.NoError(t, err)
	assert.Equal(t, append(zk.DigestACL(zk.PermAll, alice, alicePw()), zk.WorldACL(zk.PermRead)...), acl)
	require.NoError(t, server.Deregister(ctx, in), "the new session is authenticated")
	nextUntil(t, w)
}

// TestDigestAuthWarnsOnAnOpenServiceNode: a service node created before,
// without credentials, lets anyone delete the instances under it; the
// registry says so once.
func TestDigestAuthWarnsOnAnOpenServiceNode(t *testing.T) {
	root := authRoot(t)
	ctx := context.Background()
	require.NoError(t, newTest(t, Config{Servers: []string{zkAddr(t)}, Root: root}).Register(ctx, inst("open", 1)))

	var buf syncBuffer
	r := authed(t, root)
	r.log = slog.New(slog.NewTextHandler(&buf, nil))
	require.NoError(t, r.Register(ctx, inst("open", 9001)))
	require.NoError(t, r.Register(ctx, inst("open", 9002)))
	require.NoError(t, r.Register(ctx, inst("closed", 9001)))
	out := buf.String()
	assert.Equal(t, 1, strings.Count(out, "service node is open to everyone"), out)
	assert.Contains(t, out, "node="+root+"/services/open")
	assert.Contains(t, out, "acl=world:anyone:cdrwa")
	assert.NotContains(t, out, alicePw())
}

func TestDigestAuthConfigErrors(t *testing.T) {
	tr := true
	for _, c := range []struct {
		cfg         Config
		want, field string
	}{
		{Config{Password: "x"}, "password is set but username is not", "password"},
		{Config{Username: "a:b", Password: "x"}, `username "a:b" must not contain ':'`, "username"},
		{Config{Username: "alice"}, `username "alice" needs a password; write password = env("ZK_PASSWORD")`, "username"},
		{Config{WorldRead: &tr}, "world_read applies with username and password only", "world_read"},
	} {
		c.cfg.Servers = []string{"127.0.0.1:1"}
		_, err := New(c.cfg)
		require.Error(t, err, "%+v", c.cfg)
		assert.Contains(t, err.Error(), c.want)
		assert.Equal(t, c.field, spi.FieldOf(err), "the error names the attribute, so kite.hcl reports its file:line:col")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
