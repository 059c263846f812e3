package ensemble

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kiterpc/kite/core/stack"

	_ "github.com/kiterpc/kite/plugins/registry-etcd"
	_ "github.com/kiterpc/kite/plugins/registry-zk"
)

// TestClusterAddressesInKiteHCL: the kite.hcl form of docs/REGISTRIES.md
// for an ensemble and a cluster builds both registries; a bad address in
// either list is reported at that attribute's file:line:col with the
// element's index.
func TestClusterAddressesInKiteHCL(t *testing.T) {
	dir := t.TempDir()
	load := func(src string) *stack.Stack {
		path := filepath.Join(dir, "kite.hcl")
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := stack.Load(path, stack.WithLogger(hclog.NewNullLogger()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	st := load(`registry "zk" "zk" {
  servers         = ["127.0.0.1:2191", "127.0.0.1:2192", "127.0.0.1:2193"]
  session_timeout = "10s"
}
registry "etcd" "etcd" {
  endpoints = ["127.0.0.1:2391", "http://127.0.0.1:2393", "127.0.0.1:2395"]
}
`)
	for _, name := range []string{"zk", "etcd"} {
		if _, err := st.Registry(name); err != nil {
			t.Errorf("registry %q: %v", name, err)
		}
	}

	st = load(`registry "zk" "zk" {
  servers = ["127.0.0.1:2191", "127.0.0.1:21x2"]
}
registry "etcd" "etcd" {
  ttl       = "10s"
  endpoints = ["127.0.0.1:2391", "127.0.0.1"]
}
`)
	for name, want := range map[string]string{
		"zk":   `kite.hcl:2:13: building registry "zk": registry "zk": zk registry: servers[1] "127.0.0.1:21x2": port "21x2" is not a number from 1 to 65535`,
		"etcd": `kite.hcl:6:15: building registry "etcd": registry "etcd": etcd registry: endpoints[1] "127.0.0.1": want "host:port"`,
	} {
		_, err := st.Registry(name)
		if err == nil {
			t.Errorf("registry %q: a bad address was accepted", name)
			continue
		}
		if got := err.Error(); !strings.Contains(got, want) {
			t.Errorf("registry %q:\n got %s\nwant …%s…", name, got, want)
		}
	}
}
