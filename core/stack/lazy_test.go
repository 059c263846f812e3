package stack_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"
)

// processesOf counts the live processes running the executable bin,
// found through /proc/<pid>/exe: the plugin processes a stack started.
func processesOf(t *testing.T, bin string) int {
	t.Helper()
	want, err := filepath.EvalSymlinks(bin)
	require.NoError(t, err)
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err, "the process count reads /proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && exe == want {
			n++
		}
	}
	return n
}

// TestPluginsStartWhenABuiltBlockUsesThem: a kite.hcl declares a
// balancer plugin that only its client uses. A process that builds only
// the server starts no plugin process; building the client starts one
// (once, however many builds need it); Close ends it; StartPlugins (what
// Check and `kite plugins` call) starts it without any build.
func TestPluginsStartWhenABuiltBlockUsesThem(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin binary")
	}
	dir := t.TempDir()
	bin, sum := buildPlugin(t, dir, "plugins/lb-random/cmd/kite-balancer-random")
	rest := `
registry "local" "main" {
  dir           = "{{DIR}}/registry"
  poll_interval = "10ms"
}

server "echo" {
  listen   = "127.0.0.1:0"
  registry = "main"
}

client "echo" {
  registry = "main"
  balancer = "random"
  timeout  = "2s"
}
`
	path := writeHCL(t, dir, "kite.hcl", fmt.Sprintf(`
plugin "balancer" "random" {
  path   = %q
  sha256 = %q
}
`, bin, sum)+rest)
	// The same plugin declared with other arguments.
	changed := writeHCL(t, dir, "changed.hcl", fmt.Sprintf(`
plugin "balancer" "random" {
  path   = %q
  sha256 = %q
  args   = ["-v"]
}
`, bin, sum)+rest)
	require.Zero(t, processesOf(t, bin))

	// The server's process.
	srv, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer srv.Close()
	in, stop := serving(t, srv, "echo", &echo{name: "s1"})
	assert.Zero(t, processesOf(t, bin), "building only the server starts no plugin")

	// The client's process.
	cli, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer cli.Close()
	assert.Zero(t, processesOf(t, bin), "Load starts nothing")
	c, err := cli.Client("echo")
	require.NoError(t, err)
	assert.Equal(t, 1, processesOf(t, bin), "the client's balancer started its plugin")
	var resp EchoResp
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "hi"}, &resp))
	assert.Equal(t, "s1", resp.Server)
	assert.Equal(t, []string{in.Addr}, addrs(c.Instances()))
	require.NoError(t, cli.StartPlugins())
	assert.Equal(t, 1, processesOf(t, bin), "a started plugin is not started again")
	var pid int
	for _, p := range cli.Plugins() {
		if p.Kind == spi.KindBalancer && p.Name == "random" {
			pid = p.Pid
		}
	}
	assert.NotZero(t, pid)
	// A reload cannot swap a running plugin's declaration...
	err = cli.Reload(changed)
	require.Error(t, err)
	assert.Contains(t, err.Error(), changed+":2:1: balancer plugin \"random\" changed")
	assert.Contains(t, err.Error(), "restart the process")
	require.NoError(t, cli.Close())
	assert.Zero(t, processesOf(t, bin), "Close ended the plugin process")

	// ...but one not started yet takes the new declaration.
	require.NoError(t, srv.Reload(changed))
	require.NoError(t, srv.StartPlugins())
	assert.Equal(t, 1, processesOf(t, bin), "StartPlugins starts every declared plugin")
	require.NoError(t, stop())
	require.NoError(t, srv.Close())
	assert.Zero(t, processesOf(t, bin))
}
