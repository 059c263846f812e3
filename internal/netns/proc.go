package netns

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proc is a process running inside a host.
type Proc struct {
	Host   *Host
	pid    int
	stdin  io.WriteCloser
	first  chan string
	exited chan struct{}
	grace  time.Duration
	err    error
}

// StartSelf runs the test binary inside the host with env ("NAME=value")
// added and no test selected (-test.run=^$): its TestMain recognises the
// variable and plays the role it names. The first line it prints on
// stdout is kept for FirstLine; its stderr is the test's. It is stopped
// as by Stop when the test ends.
func (h *Host) StartSelf(t testing.TB, grace time.Duration, env ...string) *Proc {
	t.Helper()
	cmd := h.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	return h.start(t, grace, cmd, true)
}

// Start runs name with args inside the host, its stdout and stderr going
// to out (nil: discarded). It is stopped as by Stop when the test ends.
func (h *Host) Start(t testing.TB, grace time.Duration, out io.Writer, name string, args ...string) *Proc {
	t.Helper()
	cmd := h.Command(name, args...)
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	return h.start(t, grace, cmd, false)
}

// start starts cmd; capture keeps its stdout's first line.
func (h *Host) start(t testing.TB, grace time.Duration, cmd *exec.Cmd, capture bool) *Proc {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("netns: stdin of a process in %s: %v", h.Name, err)
	}
	var stdout io.ReadCloser
	if capture {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			t.Fatalf("netns: stdout of a process in %s: %v", h.Name, err)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("netns: starting %s in %s: %v", strings.Join(cmd.Args, " "), h.Name, err)
	}
	p := &Proc{Host: h, pid: cmd.Process.Pid, stdin: stdin, first: make(chan string, 1), exited: make(chan struct{}), grace: grace}
	go func() {
		if stdout != nil {
			l, _ := bufio.NewReader(stdout).ReadString('\n')
			p.first <- l
			_, _ = io.Copy(io.Discard, stdout) // drained before Wait closes it
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.Stop)
	return p
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.pid }

// FirstLine waits up to d for the first line the process printed on
// stdout (StartSelf only); ok is false when none came within d.
func (p *Proc) FirstLine(d time.Duration) (line string, ok bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case l := <-p.first:
		return l, true
	case <-t.C:
		return "", false
	}
}

// Kill ends the process with SIGKILL and waits until it has exited.
func (p *Proc) Kill() {
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	<-p.exited
}

// Stop closes the process's stdin and sends it SIGTERM, which ask it to
// shut down; when it has not exited after the grace it was started with,
// it is killed. Stopping an exited process does nothing.
func (p *Proc) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.stdin.Close()
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	t := time.NewTimer(p.grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.Kill()
	}
}

// Exited is closed once the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }
