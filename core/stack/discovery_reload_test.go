package stack_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core/stack"
)

const discoveryStack = `
registry "mem" "blue" {}
registry "mem" "green" {}

server "blue" {
  listen       = "127.0.0.1:0"
  registry     = "blue"
  service_name = "echo"
}

server "green" {
  listen       = "127.0.0.1:0"
  registry     = "green"
  service_name = "echo"
}

client "echo" {
  %s
  timeout = "2s"
}
`

// A SIGHUP-style reload moves a running client from one registry to
// another and then to static targets, while 4 callers keep calling: no
// call fails, and after each reload the answers come from where the new
// file points.
func TestReloadSwitchesDiscovery(t *testing.T) {
	dir := t.TempDir()
	path := writeHCL(t, dir, "kite.hcl", fmt.Sprintf(discoveryStack, `registry = "blue"`))
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	blue, _ := serving(t, st, "blue", &echo{name: "blue"})
	serving(t, st, "green", &echo{name: "green"})
	c, err := st.Client("echo")
	require.NoError(t, err)
	hasInstances(t, c)

	load := startLoad(c, 4, func(r *EchoResp) string { return r.Server })
	for _, step := range []struct{ discovery, want, applied string }{
		{`registry = "green"`, "green", `client "echo": discovery registry blue (mem) for "echo" → registry green (mem) for "echo"`},
		{fmt.Sprintf(`target = [%q]`, blue.Addr), "blue", `client "echo": discovery registry green (mem) for "echo" → targets [` + blue.Addr + `]`},
		{`registry = "green"`, "green", `client "echo": discovery targets [` + blue.Addr + `] → registry green (mem) for "echo"`},
	} {
		writeHCL(t, dir, "kite.hcl", fmt.Sprintf(discoveryStack, step.discovery))
		rep, err := st.ReloadReport(path)
		require.NoError(t, err)
		assert.Equal(t, []string{step.applied}, rep.Applied)
		assert.Empty(t, rep.NeedRestart)
		load.moved(t, step.want, "calls move to %s", step.want)
	}
	load.stop(t)
}

// Editing the registry block itself — same label, another implementation —
// moves the clients that use it to a new instance of the new registry on
// reload (the mission's "swap registries by editing the file"), under
// load and without a failed call. A server registered through the old
// block is reported as needing a restart.
func TestReloadSwapsARegistryBlock(t *testing.T) {
	shared := t.TempDir() // the local registry both stacks end up using

	// Another process's view: a "green" server registered in the local
	// registry directory.
	other := writeHCL(t, t.TempDir(), "kite.hcl", fmt.Sprintf(`
registry "local" "main" { dir = %q }
server "green" {
  listen       = "127.0.0.1:0"
  registry     = "main"
  service_name = "echo"
}
`, shared))
	st2, err := stack.Load(other, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st2.Close()
	serving(t, st2, "green", &echo{name: "green"})

	const mine = `
%s
server "blue" {
  listen       = "127.0.0.1:0"
  registry     = "main"
  service_name = "echo"
}
client "echo" {
  registry = "main"
  timeout  = "2s"
}
`
	dir := t.TempDir()
	path := writeHCL(t, dir, "kite.hcl", fmt.Sprintf(mine, `registry "mem" "main" {}`))
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	serving(t, st, "blue", &echo{name: "blue"})
	c, err := st.Client("echo")
	require.NoError(t, err)
	hasInstances(t, c)
	var resp EchoResp
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "x"}, &resp))
	require.Equal(t, "blue", resp.Server)

	load := startLoad(c, 4, func(r *EchoResp) string { return r.Server })
	writeHCL(t, dir, "kite.hcl", fmt.Sprintf(mine, fmt.Sprintf(`registry "local" "main" { dir = %q }`, shared)))
	rep, err := st.ReloadReport(path)
	require.NoError(t, err)
	assert.Equal(t, []string{`client "echo": discovery registry main (mem) for "echo" → registry main (local) for "echo"`}, rep.Applied)
	assert.Equal(t, []string{`server "blue": registry "main" changed; the server stays registered through the old one until a restart`}, rep.NeedRestart)
	load.moved(t, "green")
	load.stop(t)

	// The new instance is the stack's registry "main" from now on.
	reg, err := st.Registry("main")
	require.NoError(t, err)
	ins, err := reg.Resolve(context.Background(), "echo")
	require.NoError(t, err)
	require.Len(t, ins, 1, "the local directory lists green only")
}
