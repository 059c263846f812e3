package core

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// A peer breaking the protocol is worth a warning; a peer resetting its
// connection (a client process exiting) is not, and gets none.
func TestServerWarnsOnBadFramesOnly(t *testing.T) {
	var buf syncBuffer
	f := startServer(t, ServerOptions{Logger: hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Warn})}, "")

	reset := rawDial(t, f.addr)
	_, err := reset.Write([]byte("KT")) // half a header, then RST
	require.NoError(t, err)
	require.NoError(t, reset.(*net.TCPConn).SetLinger(0))
	require.NoError(t, reset.Close())
	require.Eventually(t, func() bool { return f.srv.Conns() == 0 }, 3*time.Second, 5*time.Millisecond)
	require.NotContains(t, buf.String(), "bad frame", "a reset is not a protocol fault")

	bad := rawDial(t, f.addr)
	defer bad.Close()
	_, err = bad.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(buf.String(), "bad frame") }, 3*time.Second, 5*time.Millisecond)
	require.Contains(t, buf.String(), "bad magic")
}
