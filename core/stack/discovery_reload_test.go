package stack_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var calls, failed atomic.Int64
	var last, firstErr atomic.Value
	last.Store("")
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var resp EchoResp
				err := c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "x"}, &resp)
				calls.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				last.Store(resp.Server)
			}
		}()
	}
	for _, step := range []struct{ discovery, want, applied string }{
		{`registry = "green"`, "green", `client "echo": discovery registry blue for "echo" → registry green for "echo"`},
		{fmt.Sprintf(`target = [%q]`, blue.Addr), "blue", `client "echo": discovery registry green for "echo" → targets [` + blue.Addr + `]`},
		{`registry = "green"`, "green", `client "echo": discovery targets [` + blue.Addr + `] → registry green for "echo"`},
	} {
		writeHCL(t, dir, "kite.hcl", fmt.Sprintf(discoveryStack, step.discovery))
		rep, err := st.ReloadReport(path)
		require.NoError(t, err)
		assert.Equal(t, []string{step.applied}, rep.Applied)
		assert.Empty(t, rep.NeedRestart)
		mark := calls.Load() + 200
		require.Eventually(t, func() bool {
			return calls.Load() > mark && last.Load() == step.want
		}, 5*time.Second, time.Millisecond, "calls move to %s", step.want)
	}
	cancel()
	wg.Wait()
	t.Logf("%d calls during 3 discovery switches, %d failed", calls.Load(), failed.Load())
	require.Zero(t, failed.Load(), "first error: %v", firstErr.Load())
}
