package stack_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"
)

// The per-connection concurrency cap and the handshake timeout of a
// limits block reach the server: a third call on a connection already
// carrying two gets ResourceExhausted, and a client that connects and says
// nothing is disconnected after handshake_timeout.
func TestLimitsFromKiteHCL(t *testing.T) {
	path := writeHCL(t, t.TempDir(), "kite.hcl", `
registry "mem" "m" {}
server "echo" {
  listen   = "127.0.0.1:0"
  registry = "m"
  limits {
    max_conn_concurrency = 2
    handshake_timeout    = "200ms"
  }
}
client "echo" {
  registry = "m"
  timeout  = "5s"
  retry { max_attempts = 1 }
  pool { conns_per_endpoint = 1 }
}
`)
	st, err := stack.Load(path, stack.WithCatalog(testCatalog(t)), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	svc := &echo{name: "a"}
	in, _ := serving(t, st, "echo", svc)
	c, err := st.Client("echo")
	require.NoError(t, err)
	hasInstances(t, c)

	var slow [2]*core.Future
	for i := range slow {
		slow[i] = c.Go(context.Background(), "Echo.Echo", &EchoReq{Text: "slow", Sleep: "1s"}, &EchoResp{})
	}
	require.Eventually(t, func() bool { return svc.calls.Load() == 2 }, 5*time.Second, 5*time.Millisecond)
	err = c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "third"}, &EchoResp{})
	require.ErrorIs(t, err, spi.ErrResourceExhausted)
	require.Contains(t, err.Error(), "max_conn_concurrency (2)")
	for _, f := range slow {
		require.NoError(t, f.Wait())
	}

	conn, err := net.Dial("tcp", in.Addr)
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = conn.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the silent connection is closed by the server, not by our read deadline")
	waited := time.Since(start)
	require.GreaterOrEqual(t, waited, 150*time.Millisecond)
	require.Less(t, waited, 2*time.Second)
}
