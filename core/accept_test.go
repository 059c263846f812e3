//go:build linux

// Linux only: the EMFILE test lowers RLIMIT_NOFILE and reads /proc.

package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/internal/testkit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func init() { childRoles["emfile"] = runEMFILEServer }

// runEMFILEServer is a server whose process may hold only a few more
// descriptors than it has at start (RLIMIT_NOFILE lowered), logging to the
// file KITE_EMFILE_LOG. It prints its address and serves until stdin ends.
func runEMFILEServer() int {
	logf, err := os.Create(os.Getenv("KITE_EMFILE_LOG"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer logf.Close()
	log := hclog.New(&hclog.LoggerOptions{Output: logf, Level: hclog.Warn})
	srv, err := NewServer(ServerOptions{Catalog: testCatalog(), Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := srv.Register("Echo", newEchoSvc()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	lim := uint64(len(fds) + 8)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: lim, Max: lim}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println(ln.Addr().String())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
	return 0
}

// TestAcceptSurvivesEMFILE is issue 19's bug 1: "accept4: too many open
// files" ended the accept loop for good (nothing logged, every later call
// timed out). The loop now retries temporary accept errors with a capped
// backoff and logs them; once descriptors are free again, calls succeed.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	logPath := t.TempDir() + "/server.log"
	p := testkit.StartSelf(t, 5*time.Second, childRoleEnv+"=emfile", "KITE_EMFILE_LOG="+logPath)
	line, ok := p.FirstLine(10 * time.Second)
	require.True(t, ok, "child server did not start")
	addr := strings.TrimSpace(line)
	require.NotEmpty(t, addr, "child server exited before printing its address")

	// 40 connections against a limit of 8 spare descriptors.
	var conns []net.Conn
	for i := 0; i < 40; i++ {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		conns = append(conns, c)
	}
	logged := assert.Eventually(t, func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "too many open files")
	}, 3*time.Second, 20*time.Millisecond, "the accept error was never logged")
	for _, c := range conns {
		_ = c.Close()
	}
	c := newClient(t, ClientOptions{Targets: []string{addr}, Codec: testJSON{}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var resp EchoResp
	err := c.Call(ctx, "Echo.Echo", &EchoReq{ID: 7}, &resp)
	require.NoError(t, err, "the server stopped accepting after EMFILE")
	require.Equal(t, 7, resp.ID)
	if logged {
		b, _ := os.ReadFile(logPath)
		t.Logf("server log: %s", firstLine(string(b)))
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// timeoutErr is an accept error the loop treats as temporary.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "accept: resource temporarily unavailable (test)" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// flakyListener fails its first accepts with a temporary error and then
// accepts from the real listener.
type flakyListener struct {
	net.Listener
	failures atomic.Int32 // accepts still to fail
	accepts  chan struct{}
	closed   chan struct{}
	once     sync.Once
}

func (l *flakyListener) Accept() (net.Conn, error) {
	select {
	case l.accepts <- struct{}{}:
	default:
	}
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: timeoutErr{}}
	}
	return l.Listener.Accept()
}

func (l *flakyListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// TestShutdownDuringAcceptRetry is issue 19's bug 3: the accept loop took
// its listener out of the server's set while it slept after an error, so
// a Shutdown then did not close it, and the loop went back to Accept on a
// listener nobody would close: Shutdown hung in the wait for its
// connection owners.
func TestShutdownDuringAcceptRetry(t *testing.T) {
	srv, err := NewServer(ServerOptions{Catalog: testCatalog(), Logger: quiet})
	require.NoError(t, err)
	real, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := &flakyListener{Listener: real, accepts: make(chan struct{}, 1), closed: make(chan struct{})}
	ln.failures.Store(1)
	t.Cleanup(func() { _ = ln.Close() })
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	<-ln.accepts // the first accept, which fails
	// Shut down while the loop sleeps after the error: wait (briefly) for
	// it to be in that sleep, as far as the server's state shows it.
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		srv.mu.Lock()
		_, registered := srv.listeners[ln]
		srv.mu.Unlock()
		if !registered {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	select {
	case err := <-shut:
		require.NoError(t, err)
	case <-time.After(3 * time.Second):
		_ = ln.Close() // let the stuck loop go
		t.Fatal("Shutdown hung: the listener was not closed while its accept loop slept")
	}
	select {
	case <-ln.closed:
	default:
		t.Fatal("Shutdown did not close the listener")
	}
	require.NoError(t, <-served)
}

// TestNoHandlerForAClosedConnection is the second half of issue 19's bug
// 3: a request read just before its connection was closed (by the idle
// janitor or a forced shutdown) still had its handler run.
func TestNoHandlerForAClosedConnection(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	t.Cleanup(func() { close(f.svc.release) })
	a, b := net.Pipe()
	t.Cleanup(func() { _ = b.Close() })
	sc := newServerConn(f.srv, a)
	sc.close(errors.New("test: closed"))

	frame := rawRequest(1, "Echo.Hold", 0, []byte(`{"id":1}`))
	r := protocol.NewReader(strings.NewReader(string(frame)), 0, 0, 0)
	var fr protocol.Frame
	require.NoError(t, r.ReadFrame(&fr))
	fr.Codec = testJSON{}.ID()
	sc.startCall(fr)
	require.Zero(t, f.srv.InFlight(), "a call was admitted on a closed connection")
	select {
	case <-f.svc.sleepStarted:
		t.Fatal("a handler ran for a connection already closed")
	case <-time.After(100 * time.Millisecond):
	}
}
