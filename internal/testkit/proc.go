package testkit

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Proc is the test binary run again as a helper process — a server, say,
// that a test must be able to SIGKILL. The binary's TestMain recognises
// an environment variable, runs the role instead of the tests, and ends
// when its standard input ends:
//
//	func TestMain(m *testing.M) {
//		if addr := os.Getenv("KITE_X_SERVER"); addr != "" {
//			os.Exit(runServer(addr)) // serve; print "ready"; io.Copy(io.Discard, os.Stdin); shut down
//		}
//		goleak.VerifyTestMain(m)
//	}
type Proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	first  chan string
	exited chan struct{}
	grace  time.Duration
}

// StartSelf starts the test binary with env ("NAME=value") added to the
// environment and no test selected (-test.run=^$). Its stderr is the
// test's; the first line it prints on stdout is kept for FirstLine, the
// rest discarded. Where the OS allows, it dies with the test binary even
// when that is killed. When the test ends it is stopped as by Stop(grace).
func StartSelf(t testing.TB, grace time.Duration, env ...string) *Proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	dieWithParent(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("testkit: stdin of a helper process: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("testkit: stdout of a helper process: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testkit: starting a helper process: %v", err)
	}
	p := &Proc{cmd: cmd, stdin: stdin, first: make(chan string, 1), exited: make(chan struct{}), grace: grace}
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		p.first <- l
		// Drained to the end before Wait, which closes the pipe.
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.Stop)
	return p
}

// FirstLine waits up to d for the first line the process prints on
// stdout, newline included; ok is false when none came within d. A
// process that exits without printing one gives an empty line. Only the
// first call can return a line.
func (p *Proc) FirstLine(d time.Duration) (line string, ok bool) {
	select {
	case l := <-p.first:
		return l, true
	case <-time.After(d):
		return "", false
	}
}

// Kill ends the process with SIGKILL — no shutdown, no deregistration,
// only what the kernel does for a dead process's sockets — and waits
// until it has exited.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil { // SIGKILL where there are signals
		t.Fatalf("testkit: SIGKILL to helper process %d: %v", p.cmd.Process.Pid, err)
	}
	<-p.exited
}

// Stop closes the process's stdin, which asks it to shut down gracefully,
// and waits; when it has not exited after the grace StartSelf was given,
// it is killed. Stopping an exited process does nothing.
func (p *Proc) Stop() {
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(p.grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Exited is closed once the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }
