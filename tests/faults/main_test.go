package faults

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/internal/testkit"
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

// startServerProcess runs the test binary as a server on addr and waits
// until it serves. When the test ends it is stopped gracefully, or killed
// if it does not end within 10s.
func startServerProcess(t *testing.T, addr string) *testkit.Proc {
	t.Helper()
	p := testkit.StartSelf(t, 10*time.Second, serverEnv+"="+addr)
	l, ok := p.FirstLine(30 * time.Second)
	if !ok {
		t.Fatalf("server process on %s did not start within 30s", addr)
	}
	require.Equal(t, "ready", strings.TrimSpace(l), "server process on %s did not start", addr)
	return p
}
