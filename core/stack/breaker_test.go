package stack_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"
)

// down is a service whose every call fails with Unavailable, the code a
// breaker counts against its endpoint.
type down struct{ calls atomic.Int64 }

func (d *down) Call(context.Context, *EchoReq) (*EchoResp, error) {
	d.calls.Add(1)
	return nil, spi.Errorf(spi.Unavailable, "down for maintenance")
}

const breakerClients = `
client "tight" {
  service = "Down"
  target  = [%[1]q]
  retry { max_attempts = 1 }
  breaker {
    consecutive_failures = 2
    failure_ratio        = 0
    base_ejection        = "1h"
    max_ejection         = "2h"
  }
}
client "defaults" {
  service = "Down"
  target  = [%[1]q]
  retry { max_attempts = 1 }
}
client "off" {
  service = "Down"
  target  = [%[1]q]
  retry { max_attempts = 1 }
  breaker { enabled = false }
}
`

// failCalls makes n calls that each fail with Unavailable from the server.
// serveDown serves each impl as the service "Down" on a loopback server
// of its own (all in one stack, closed with the test) and returns their
// instances in order.
func serveDown(t *testing.T, cat *spi.Catalog, impls ...any) []spi.Instance {
	t.Helper()
	var src strings.Builder
	for i := range impls {
		fmt.Fprintf(&src, "server \"s%d\" {\n  listen   = \"127.0.0.1:0\"\n  registry = \"none\"\n}\n", i)
	}
	st, err := stack.Load(writeHCL(t, t.TempDir(), "server.hcl", src.String()), stack.WithCatalog(cat), stack.WithLogger(quiet))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	out := make([]spi.Instance, len(impls))
	for i, impl := range impls {
		out[i], _ = servingWith(t, st, fmt.Sprintf("s%d", i), func(s *core.Server) error { return s.Register("Down", impl) })
	}
	return out
}

func failCalls(t *testing.T, c *core.Client, n int) {
	t.Helper()
	var resp EchoResp
	for i := range n {
		err := c.Call(context.Background(), "Down.Call", &EchoReq{Text: "x"}, &resp)
		require.Error(t, err, "call %d", i)
		require.Equal(t, spi.Unavailable, spi.CodeOf(err), "call %d: %v", i, err)
	}
}

// The breaker block reaches the client: over loopback, two failed calls
// eject the endpoint of a client with consecutive_failures = 2, for the
// configured base_ejection, while a client without the block (default
// 5) and one with enabled = false keep it in rotation.
func TestBreakerSettingsReachTheClient(t *testing.T) {
	dir := t.TempDir()
	cat := testCatalog(t)
	svc := &down{}
	in := serveDown(t, cat, svc)[0]

	cpath := writeHCL(t, dir, "client.hcl", fmt.Sprintf(breakerClients, in.Addr))
	cst, err := stack.Load(cpath, stack.WithCatalog(cat), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer cst.Close()

	tight, err := cst.Client("tight")
	require.NoError(t, err)
	failCalls(t, tight, 1)
	st := tight.Stats()
	assert.Equal(t, uint64(0), st.Ejections, "one failure is below consecutive_failures = 2")
	assert.Equal(t, resilience.Closed, st.Breakers[in.Addr].State)
	before := time.Now()
	failCalls(t, tight, 1)
	st = tight.Stats()
	assert.Equal(t, uint64(1), st.Ejections)
	assert.Equal(t, []string{in.Addr}, st.Ejected)
	b := st.Breakers[in.Addr]
	assert.Equal(t, resilience.Open, b.State)
	assert.Equal(t, 1, b.Ejections)
	assert.WithinDuration(t, before.Add(time.Hour), b.OpenUntil, time.Minute, "ejected for base_ejection = 1h")
	assert.EqualValues(t, 2, svc.calls.Load())

	def, err := cst.Client("defaults")
	require.NoError(t, err)
	failCalls(t, def, resilience.DefaultConsecutiveFailures-1)
	st = def.Stats()
	assert.Equal(t, uint64(0), st.Ejections, "without a breaker block the default threshold applies")
	assert.Equal(t, resilience.Closed, st.Breakers[in.Addr].State)
	failCalls(t, def, 1)
	assert.Equal(t, uint64(1), def.Stats().Ejections)

	off, err := cst.Client("off")
	require.NoError(t, err)
	failCalls(t, off, 3*resilience.DefaultConsecutiveFailures)
	st = off.Stats()
	assert.Equal(t, uint64(0), st.Ejections, "enabled = false never ejects")
	assert.Equal(t, resilience.Closed, st.Breakers[in.Addr].State)
}

// A breaker change applies to the running client on reload: the new
// threshold counts from then on.
func TestReloadAppliesBreaker(t *testing.T) {
	dir := t.TempDir()
	cat := testCatalog(t)
	in := serveDown(t, cat, &down{})[0]

	cpath := writeHCL(t, dir, "client.hcl", fmt.Sprintf(breakerClients, in.Addr))
	cst, err := stack.Load(cpath, stack.WithCatalog(cat), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer cst.Close()
	tight, err := cst.Client("tight")
	require.NoError(t, err)

	// Reloading the same file changes nothing.
	rep, err := cst.ReloadReport(cpath)
	require.NoError(t, err)
	assert.Empty(t, rep.NeedRestart)

	writeHCL(t, dir, "client.hcl", strings.Replace(fmt.Sprintf(breakerClients, in.Addr),
		"consecutive_failures = 2", "consecutive_failures = 4", 1))
	rep, err = cst.ReloadReport(cpath)
	require.NoError(t, err)
	assert.Equal(t, []string{`client "tight": breaker settings replaced (every endpoint back in rotation)`}, rep.Applied)
	assert.Empty(t, rep.NeedRestart)

	failCalls(t, tight, 3)
	assert.Zero(t, tight.Stats().Ejections, "consecutive_failures = 4 now: 3 failures do not eject")
	failCalls(t, tight, 1)
	assert.Equal(t, uint64(1), tight.Stats().Ejections, "the 4th does")
}

// up answers what down refuses.
type up struct{}

func (up) Call(context.Context, *EchoReq) (*EchoResp, error) { return &EchoResp{Server: "up"}, nil }

// A reload that changes the retry block or a method's idempotency applies
// to the running client: calls that failed without retries succeed once
// the method is idempotent and retried on the other instance.
func TestReloadAppliesRetryAndMethods(t *testing.T) {
	dir := t.TempDir()
	cat := testCatalog(t)
	ins := serveDown(t, cat, &down{}, up{})
	bad, good := ins[0], ins[1]

	const client = `
client "c" {
  target   = [%q, %q]
  balancer = "round_robin"
  breaker { enabled = false }
  %s
}
`
	cpath := writeHCL(t, dir, "client.hcl", fmt.Sprintf(client, good.Addr, bad.Addr, `retry { max_attempts = 1 }`))
	cst, err := stack.Load(cpath, stack.WithCatalog(cat), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer cst.Close()
	c, err := cst.Client("c")
	require.NoError(t, err)
	failures := func() (n int) {
		for range 10 {
			if c.Call(context.Background(), "Down.Call", &EchoReq{}, &EchoResp{}) != nil {
				n++
			}
		}
		return n
	}
	require.Equal(t, 5, failures())

	writeHCL(t, dir, "client.hcl", fmt.Sprintf(client, good.Addr, bad.Addr, `retry { max_attempts = 3 }
  method "Down.Call" { idempotent = true }`))
	rep, err := cst.ReloadReport(cpath)
	require.NoError(t, err)
	assert.Contains(t, rep.Applied, `client "c": retry and method settings replaced`)
	assert.Empty(t, rep.NeedRestart)
	require.Zero(t, failures(), "retried on the other instance")
}
