package faults

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/spi/plugin"

	_ "github.com/kiterpc/kite/plugins/codec-json"
)

// serverEnv makes the test binary a Kite server process listening on the
// address it holds; see runServerProcess.
const serverEnv = "KITE_FAULTS_SERVER"

func TestMain(m *testing.M) {
	if addr := os.Getenv(serverEnv); addr != "" {
		os.Exit(runServerProcess(addr))
	}
	code := m.Run()
	plugin.Shutdown()
	cleanupBuilds()
	if code == 0 {
		// spi/plugin starts plugins from one OS thread locked for the life
		// of the process, on purpose (parent-death signals): not a leak.
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/kiterpc/kite/spi/plugin.spawnLoop")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// runServerProcess is the main of a server process: serve the echo
// service on addr, print "ready", run until stdin ends or a signal kills
// it.
func runServerProcess(addr string) int {
	srv, err := core.NewServer(core.ServerOptions{Logger: hclog.NewNullLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults server:", err)
		return 2
	}
	if err := srv.Register("Echo", &echo{name: "proc-" + fmt.Sprint(os.Getpid())}); err != nil {
		fmt.Fprintln(os.Stderr, "faults server:", err)
		return 2
	}
	if _, err := srv.Listen(context.Background(), addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "faults server:", err)
		return 2
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	return 0
}

// serverProc is a server process started by startServerProcess.
type serverProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
}

// startServerProcess runs the test binary as a server on addr and waits
// until it serves.
func startServerProcess(t *testing.T, addr string) *serverProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverEnv+"="+addr)
	cmd.Stderr = os.Stderr
	// Die with the test binary, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &serverProc{cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.stop)
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-line:
		require.Equal(t, "ready", strings.TrimSpace(l), "server process on %s did not start", addr)
	case <-time.After(30 * time.Second):
		t.Fatalf("server process on %s did not start within 30s", addr)
	}
	return p
}

// kill ends the process with SIGKILL: no GOAWAY, no FIN from the
// application, only what the kernel does for a dead process's sockets.
func (p *serverProc) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.exited
}

// stop ends the process gracefully, or kills it if it does not end.
func (p *serverProc) stop() {
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}
