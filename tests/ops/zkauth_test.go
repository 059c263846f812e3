package ops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/spi"

	_ "github.com/kiterpc/kite/plugins/registry-zk"
)

const zkAuthStack = `
registry "zk" "main" {
  servers  = ["{{ZK}}"]
  root     = "{{ROOT}}"
  username = "ops"
  password = env("KITE_TEST_ZK_PASSWORD")
}

server "echo" {
  listen   = "127.0.0.1:0"
  registry = "main"
}

client "echo" {
  registry = "main"
  timeout  = "5s"
}
`

// TestZKDigestAuthFromKiteHCL: a kite.hcl zk registry with username and
// password = env(…) registers a real server with ACLs on a real
// ZooKeeper; a client of the same file discovers and calls it; a plain
// client without credentials cannot delete the instance; a block with a
// username and no password is reported at the attribute's file:line:col.
func TestZKDigestAuthFromKiteHCL(t *testing.T) {
	addr := testkit.Env(t, "KITE_ZK_ADDR", "run `bash scripts/services.sh up && source .kite/services.env` (make test does)")
	var b [6]byte
	_, _ = rand.Read(b[:])
	root := "/kite-ops-auth-" + hex.EncodeToString(b[:])
	const password = "pw-from-the-environment-91"
	t.Setenv("KITE_TEST_ZK_PASSWORD", password)
	t.Cleanup(func() { deleteZKTreeAs(t, addr, root, "ops:"+password) })

	dir := t.TempDir()
	path := writeFile(t, dir, "kite.hcl", hcl(zkAuthStack, "{{ZK}}", addr, "{{ROOT}}", root))
	s := serve(t, path, "echo", &echo{name: "a"})

	c, err := s.st.Client("echo")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r EchoResp
	require.NoError(t, c.Call(ctx, "Echo.Echo", &EchoReq{Text: "hi"}, &r))
	assert.Equal(t, "a", r.Server)

	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
	require.NoError(t, err)
	defer conn.Close()
	svcNode := root + "/services/echo"
	children, _, err := conn.Children(svcNode)
	require.NoError(t, err, "world read: discovery is open")
	require.Len(t, children, 1)
	err = conn.Delete(svcNode+"/"+children[0], -1)
	assert.ErrorIs(t, err, zk.ErrNoAuth, "without the credentials the instance cannot be removed")
	acl, _, err := conn.GetACL(svcNode + "/" + children[0])
	require.NoError(t, err)
	assert.Equal(t, []zk.ACL{{Perms: zk.PermAll, Scheme: "digest", ID: "ops:x"}, {Perms: zk.PermRead, Scheme: "world", ID: "anyone"}}, acl)

	// No password: the error points at the username attribute.
	bad := writeFile(t, dir, "bad.hcl", `registry "zk" "main" {
  servers  = ["`+addr+`"]
  username = "ops"
}
`)
	st, err := stack.Load(bad, stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	_, err = st.Registry("main")
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Base(bad)+`:3:14: building registry "zk" "main"`)
	assert.Contains(t, err.Error(), `username "ops" needs a password; write password = env("ZK_PASSWORD")`)
	assert.Equal(t, "username", spi.FieldOf(err))
	assert.NotContains(t, err.Error(), password)
}

type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}

// deleteZKTreeAs removes root with digest credentials (its nodes carry
// ACLs that world cannot delete).
func deleteZKTreeAs(t *testing.T, addr, root, cred string) {
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Errorf("cleanup of %s: %v", root, err)
		return
	}
	defer conn.Close()
	if err := conn.AddAuth("digest", []byte(cred)); err != nil {
		t.Errorf("cleanup of %s: %v", root, err)
		return
	}
	var del func(string) error
	del = func(p string) error {
		children, _, err := conn.Children(p)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, c := range children {
			if err := del(p + "/" + c); err != nil {
				return err
			}
		}
		if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
		return nil
	}
	if err := del(root); err != nil {
		t.Errorf("cleanup of %s: %v", root, err)
	}
}
