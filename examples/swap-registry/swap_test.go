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
			if tc.env != "" {
				testkit.Env(t, tc.env, "start the registry with `bash scripts/services.sh up` and source .kite/services.env (make test does)")
			}
			env := append(os.Environ(), "KITE_SWAP_SERVICE="+service, "KITE_LOCAL_DIR="+t.TempDir())
			runSwap(t, tc.file, env)
		})
	}
}

var servingLine = regexp.MustCompile(`^serving (\S+) pid=(\d+)$`)

// swapServer is a server process of the example.
type swapServer struct {
	addr, pid string
	log       *testkit.SyncBuffer
	exited    chan error
	proc      *os.Process
}

// startSwapServer runs the server binary with file and waits until it
// says where it serves; the process is killed at the end of the test
// unless stopped before.
func startSwapServer(t *testing.T, file string, env []string) *swapServer {
	t.Helper()
	srv := exec.Command(serverBin, "-f", file)
	srv.Env = env
	stdout, err := srv.StdoutPipe()
	require.NoError(t, err)
	s := &swapServer{log: &testkit.SyncBuffer{}, exited: make(chan error, 1)}
	srv.Stderr = s.log
	require.NoError(t, srv.Start())
	s.proc = srv.Process
	serving := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				serving <- m
			}
		}
		// Stdout is drained to EOF before Wait closes the pipe.
		s.exited <- srv.Wait()
	}()
	var stopped bool
	t.Cleanup(func() {
		if !stopped {
			_ = s.proc.Kill()
			<-s.exited
		}
	})
	// The server says where it listens once it is registered.
	select {
	case m := <-serving:
		s.addr, s.pid = m[1], m[2]
	case err := <-s.exited:
		stopped = true
		t.Fatalf("server exited before serving: %v\n%s", err, s.log)
	case <-time.After(20 * time.Second):
		t.Fatalf("server not serving after 20s:\n%s", s.log)
	}
	return s
}

// stop sends SIGTERM and waits for a clean exit.
func (s *swapServer) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, s.proc.Signal(syscall.SIGTERM))
	select {
	case err := <-s.exited:
		s.exited <- err // for the cleanup
		require.NoError(t, err, "server log:\n%s", s.log)
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not stop; log:\n%s", s.log)
	}
}

func runSwap(t *testing.T, file string, env []string) {
	srv := startSwapServer(t, file, env)
	out, err := runClient(env, file, "-n", "3")
	require.NoError(t, err, "client output:\n%s\nserver log:\n%s", out, srv.log)
	assert.Regexp(t, `registry main resolved swap-echo-\d+: \[`+regexp.QuoteMeta(srv.addr)+`\]`, out, "the registry listed the server")
	for i := range 3 {
		assert.Contains(t, out, fmt.Sprintf("call %d: \"hello %d\" answered by %s pid=%s", i, i, srv.addr, srv.pid))
	}
	t.Logf("%s:\n%s", file, out)

	// A graceful stop deregisters: the next client finds nobody.
	srv.stop(t)
	out, err = runClient(env, file, "-n", "1", "-wait", "300ms")
	require.Error(t, err, out)
	assert.Regexp(t, `registry main resolved swap-echo-\d+: \[\]`, out, "deregistered on shutdown")
}

// TestHotSwapRegistry swaps the registry of a running client: a -watch
// client reads a copy of kite-local.hcl and calls a server found in the
// local registry; kite-zk.hcl is pasted over its file and the client gets
// SIGHUP; its calls move to a server registered in ZooKeeper, with no
// failed call and no restart.
func TestHotSwapRegistry(t *testing.T) {
	testkit.Env(t, "KITE_ZK_ADDR", "start the registry with `bash scripts/services.sh up` and source .kite/services.env (make test does)")
	service := fmt.Sprintf("swap-hot-%d", os.Getpid())
	env := append(os.Environ(), "KITE_SWAP_SERVICE="+service, "KITE_LOCAL_DIR="+t.TempDir())
	local := startSwapServer(t, "kite-local.hcl", env)
	zk := startSwapServer(t, "kite-zk.hcl", env)

	file := filepath.Join(t.TempDir(), "kite.hcl")
	copyFile(t, "kite-local.hcl", file)
	cmd := exec.Command(clientBin, "-f", file, "-watch", "-every", "20ms")
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	clientLog := &testkit.SyncBuffer{}
	cmd.Stderr = clientLog
	require.NoError(t, cmd.Start())
	lines := make(chan string, 1024)
	exited := make(chan error, 1)
	var out testkit.SyncBuffer
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(&out, sc.Text())
			lines <- sc.Text()
		}
		exited <- cmd.Wait()
	}()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()
	waitLine := func(what string, match func(string) bool) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l := <-lines:
				if match(l) {
					return
				}
			case err := <-exited:
				t.Fatalf("client exited waiting for %s: %v\n%s\n%s", what, err, &out, clientLog)
			case <-timeout:
				t.Fatalf("no %s within 20s; client output:\n%s\n%s", what, &out, clientLog)
			}
		}
	}
	answeredBy := func(s *swapServer) func(string) bool {
		return func(l string) bool { return strings.HasSuffix(l, "answered by "+s.addr+" pid="+s.pid) }
	}
	waitLine("an answer from the local-registry server", answeredBy(local))

	copyFile(t, "kite-zk.hcl", file)
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	waitLine("the reload", func(l string) bool {
		return strings.HasPrefix(l, `reload applied: client "echo": discovery registry main (local)`) && strings.Contains(l, "→ registry main (zk)")
	})
	waitLine("an answer from the ZooKeeper server", answeredBy(zk))

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "client output:\n%s\n%s", &out, clientLog)
	case <-time.After(10 * time.Second):
		t.Fatal("client did not stop on SIGTERM")
	}
	assert.NotContains(t, out.String(), "failed", "no call failed across the swap")
	t.Logf("client output (tail):\n%s", tail(out.String(), 12))
	local.stop(t)
	zk.stop(t)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o644))
}

func tail(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}

func runClient(env []string, file string, args ...string) (string, error) {
	cmd := exec.Command(clientBin, append([]string{"-f", file}, args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}
