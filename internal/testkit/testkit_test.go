package testkit

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// roleEnv makes the test binary a helper process of the Proc tests.
const roleEnv = "KITE_TESTKIT_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	goleak.VerifyTestMain(m)
}

func runRole(role string) int {
	switch role {
	case "polite": // what a real helper does: ready, then stop with stdin
		fmt.Println("ready")
		fmt.Println("more output, discarded")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	case "deaf": // ready, but ignores the end of stdin
		fmt.Println("ready")
		time.Sleep(time.Hour)
	case "mute": // never ready
		time.Sleep(time.Hour)
	case "crash": // exits before printing anything
		return 3
	}
	return 2
}

func exitSignal(p *Proc) syscall.Signal {
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0
	}
	return ws.Signal()
}

func TestProcStopIsGraceful(t *testing.T) {
	p := StartSelf(t, 10*time.Second, roleEnv+"=polite")
	l, ok := p.FirstLine(30 * time.Second)
	require.True(t, ok, "no ready line within 30s")
	assert.Equal(t, "ready\n", l)
	p.Stop()
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned before the process exited")
	}
	assert.Equal(t, 0, p.cmd.ProcessState.ExitCode(), "the process ended by itself on stdin's end")
	p.Stop() // again, as the cleanup will: nothing happens
}

func TestProcStopKillsAfterGrace(t *testing.T) {
	const grace = 200 * time.Millisecond
	p := StartSelf(t, grace, roleEnv+"=deaf")
	_, ok := p.FirstLine(30 * time.Second)
	require.True(t, ok)
	start := time.Now()
	p.Stop()
	took := time.Since(start)
	assert.GreaterOrEqual(t, took, grace, "killed only after the grace")
	assert.Less(t, took, grace+5*time.Second)
	assert.Equal(t, syscall.SIGKILL, exitSignal(p))
}

func TestProcKill(t *testing.T) {
	p := StartSelf(t, 10*time.Second, roleEnv+"=polite")
	_, ok := p.FirstLine(30 * time.Second)
	require.True(t, ok)
	p.Kill(t)
	select {
	case <-p.Exited():
	default:
		t.Fatal("Kill returned before the process exited")
	}
	assert.Equal(t, syscall.SIGKILL, exitSignal(p))
}

func TestProcFirstLine(t *testing.T) {
	t.Run("exit without a line", func(t *testing.T) {
		p := StartSelf(t, 10*time.Second, roleEnv+"=crash")
		l, ok := p.FirstLine(30 * time.Second)
		assert.True(t, ok)
		assert.Empty(t, l)
		<-p.Exited()
		assert.Equal(t, 3, p.cmd.ProcessState.ExitCode())
	})
	t.Run("timeout", func(t *testing.T) {
		p := StartSelf(t, 100*time.Millisecond, roleEnv+"=mute")
		start := time.Now()
		_, ok := p.FirstLine(100 * time.Millisecond)
		assert.False(t, ok)
		assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
		// The cleanup kills it after 100 ms; goleak then checks the
		// reader goroutine ended with it.
	})
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	const writers, lines = 8, 200
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range lines {
				_, _ = fmt.Fprintf(&b, "w%d\n", w)
				_ = b.String() // read while others write: -race checks it
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, writers*lines, strings.Count(b.String(), "\n"))

	// As a child's stderr, read while the child writes.
	cmd := exec.Command("sh", "-c", "echo one >&2; echo two >&2")
	var errb SyncBuffer
	cmd.Stderr = &errb
	require.NoError(t, cmd.Run())
	assert.Equal(t, "one\ntwo\n", errb.String())
}

func TestDeleteZKTree(t *testing.T) {
	addr := Env(t, "KITE_ZK_ADDR", "run `bash scripts/services.sh up && source .kite/services.env` (make test does)")
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quietZK{}))
	require.NoError(t, err)
	defer conn.Close()
	var r [6]byte
	_, _ = rand.Read(r[:])
	root := "/kite-testkit-" + hex.EncodeToString(r[:])
	acl := zk.WorldACL(zk.PermAll)
	for _, p := range []string{root, root + "/svc", root + "/svc/a", root + "/svc/b", root + "/other"} {
		_, err := conn.Create(p, []byte("x"), 0, acl)
		require.NoError(t, err, p)
	}
	_, err = conn.Create(root+"/svc/eph", nil, zk.FlagEphemeral, acl)
	require.NoError(t, err)

	DeleteZKTree(t, addr, root)
	ok, _, err := conn.Exists(root)
	require.NoError(t, err)
	assert.False(t, ok, "%s and everything below it is gone", root)

	// A root that is not there is nothing to clean up, not an error
	// (t.Errorf would fail this test).
	DeleteZKTree(t, addr, root)
}
