package swapregistry_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/internal/testkit"
)

// serverBin and clientBin are built once for every registry.
var serverBin, clientBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "swap-registry")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverBin, clientBin = filepath.Join(dir, "server"), filepath.Join(dir, "client")
	for bin, pkg := range map[string]string{serverBin: "./server", clientBin: "./client"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// TestSwapRegistry runs the same two binaries with kite-local.hcl, then
// kite-zk.hcl, then kite-etcd.hcl. The server listens on port 0, so the
// client can only reach it through the registry; the client prints the
// addresses the registry resolved and which instance answered.
func TestSwapRegistry(t *testing.T) {
	service := fmt.Sprintf("swap-echo-%d", os.Getpid()) // no clash with other runs on a shared server
	cases := []struct{ file, env string }{
		{"kite-local.hcl", ""},
		{"kite-zk.hcl", "KITE_ZK_ADDR"},
		{"kite-etcd.hcl", "KITE_ETCD_ADDR"},
	}
	for _, tc := range cases {
		t.Run(strings.TrimSuffix(tc.file, ".hcl"), func(t *testing.T) {
			if tc.env != "" && os.Getenv(tc.env) == "" {
				t.Skipf("%s is not set: start the registry with `bash scripts/services.sh up` and source .kite/services.env (CI always does)", tc.env)
			}
			env := append(os.Environ(), "KITE_SWAP_SERVICE="+service, "KITE_LOCAL_DIR="+t.TempDir())
			runSwap(t, tc.file, env)
		})
	}
}

var servingLine = regexp.MustCompile(`^serving (\S+) pid=(\d+)$`)

func runSwap(t *testing.T, file string, env []string) {
	srv := exec.Command(serverBin, "-f", file)
	srv.Env = env
	stdout, err := srv.StdoutPipe()
	require.NoError(t, err)
	serverLog := &testkit.SyncBuffer{}
	srv.Stderr = serverLog
	require.NoError(t, srv.Start())
	serving := make(chan []string, 1)
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				serving <- m
			}
		}
		// Stdout is drained to EOF before Wait closes the pipe.
		exited <- srv.Wait()
	}()
	stopped := false
	defer func() {
		if !stopped {
			_ = srv.Process.Kill()
			<-exited
		}
	}()

	// The server says where it listens once it is registered.
	var addr, pid string
	select {
	case m := <-serving:
		addr, pid = m[1], m[2]
	case err := <-exited:
		stopped = true
		t.Fatalf("server exited before serving: %v\n%s", err, serverLog)
	case <-time.After(20 * time.Second):
		t.Fatalf("server not serving after 20s:\n%s", serverLog)
	}

	out, err := runClient(env, file, "-n", "3")
	require.NoError(t, err, "client output:\n%s\nserver log:\n%s", out, serverLog)
	assert.Regexp(t, `registry main resolved swap-echo-\d+: \[`+regexp.QuoteMeta(addr)+`\]`, out, "the registry listed the server")
	for i := range 3 {
		assert.Contains(t, out, fmt.Sprintf("call %d: \"hello %d\" answered by %s pid=%s", i, i, addr, pid))
	}
	t.Logf("%s:\n%s", file, out)

	// A graceful stop deregisters: the next client finds nobody.
	require.NoError(t, srv.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		stopped = true
		require.NoError(t, err, "server log:\n%s", serverLog)
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not stop; log:\n%s", serverLog)
	}
	out, err = runClient(env, file, "-n", "1", "-wait", "300ms")
	require.Error(t, err, out)
	assert.Regexp(t, `registry main resolved swap-echo-\d+: \[\]`, out, "deregistered on shutdown")
}

func runClient(env []string, file string, args ...string) (string, error) {
	cmd := exec.Command(clientBin, append([]string{"-f", file}, args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}
