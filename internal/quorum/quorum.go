package quorum

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Kind names a backend.
type Kind string

// The backends a Cluster can run.
const (
	KindZooKeeper Kind = "zookeeper"
	KindEtcd      Kind = "etcd"
)

// Member is one server process of a cluster. Its ports and data
// directory stay the same across Kill/Start, as a host's would.
type Member struct {
	// Name is "zk1".."zkN" or "etcd1".."etcdN".
	Name string
	// ClientAddr is the loopback "host:port" clients connect to.
	ClientAddr string

	kind    Kind
	id      int // 1-based
	dir     string
	logPath string
	argv    []string
	env     []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited; nil when never started
}

// Start runs the member's process (again); it does not wait until the
// member serves (see Cluster.WaitServing). Starting a running member is
// an error.
func (m *Member) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.exited != nil {
		select {
		case <-m.exited:
		default:
			return fmt.Errorf("quorum: %s is already running (pid %d)", m.Name, m.cmd.Process.Pid)
		}
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("quorum: %s: %w", m.Name, err)
	}
	fmt.Fprintf(logf, "\n==== quorum: starting %s at %s ====\n", m.Name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(m.argv[0], m.argv[1:]...)
	cmd.Dir = m.dir
	cmd.Env = append(os.Environ(), m.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("quorum: starting %s (%s): %w", m.Name, m.argv[0], err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	m.cmd, m.exited = cmd, exited
	return nil
}

// running returns the process's exit channel, or nil when it is not running.
func (m *Member) running() (*exec.Cmd, chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.exited == nil {
		return nil, nil
	}
	select {
	case <-m.exited:
		return nil, nil
	default:
		return m.cmd, m.exited
	}
}

// Running reports whether the member's process is alive.
func (m *Member) Running() bool {
	cmd, _ := m.running()
	return cmd != nil
}

// Pid is the process id of the running member, 0 when it is not running.
func (m *Member) Pid() int {
	if cmd, _ := m.running(); cmd != nil {
		return cmd.Process.Pid
	}
	return 0
}

// Kill ends the member with SIGKILL — no goodbye to its peers or its
// clients, only what the kernel does with a dead process's sockets — and
// waits until it has exited. Killing a stopped member does nothing.
func (m *Member) Kill() {
	cmd, exited := m.running()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Stop asks the member to exit (SIGTERM) and kills it when it has not
// within grace.
func (m *Member) Stop(grace time.Duration) {
	cmd, exited := m.running()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// LogTail returns the last n lines of the member's output (all runs).
func (m *Member) LogTail(n int) string {
	b, err := os.ReadFile(m.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Cluster is a set of members of one kind.
type Cluster struct {
	Kind    Kind
	Members []*Member
	dir     string
	ownDir  bool
	closed  bool
	mu      sync.Mutex
	serving func(ctx context.Context, m *Member) (role string, err error)
}

// Options configure a cluster.
type Options struct {
	// Members is the cluster size; default 3.
	Members int
	// Dir holds the members' data and logs; default a new temporary
	// directory, removed by Close. A given Dir is left in place.
	Dir string
}

func (o *Options) defaults(kind Kind) (dir string, own bool, err error) {
	if o.Members == 0 {
		o.Members = 3
	}
	if o.Members < 1 || o.Members > 9 {
		return "", false, fmt.Errorf("quorum: %d members: want 1 to 9", o.Members)
	}
	if o.Dir != "" {
		return o.Dir, false, os.MkdirAll(o.Dir, 0o700)
	}
	d, err := os.MkdirTemp("", "kite-"+string(kind)+"-cluster")
	return d, true, err
}

// Addrs returns the members' client addresses, "127.0.0.1:port", in
// member order.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.ClientAddr
	}
	return out
}

// Member returns the member called name, or nil.
func (c *Cluster) Member(name string) *Member {
	for _, m := range c.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Dir is the directory holding the members' data and logs.
func (c *Cluster) Dir() string { return c.dir }

// Role asks a running member what it is now: "leader" or "follower"
// while it serves clients as part of a quorum ("standalone" for a
// single ZooKeeper); an error while it does not serve (no quorum, not
// started, starting).
func (c *Cluster) Role(ctx context.Context, m *Member) (string, error) {
	return c.serving(ctx, m)
}

// Leader returns the member that currently leads, asking the running
// members once each.
func (c *Cluster) Leader(ctx context.Context) (*Member, error) {
	var errs []error
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		role, err := c.serving(ctx, m)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
			continue
		}
		if role == "leader" || role == "standalone" {
			return m, nil
		}
	}
	return nil, fmt.Errorf("quorum: no %s member leads: %w", c.Kind, errors.Join(errs...))
}

// WaitServing waits until every member in ms (every running member when
// ms is empty) serves clients as a leader or follower, polling every
// 20 ms. It fails fast when a member process exits.
func (c *Cluster) WaitServing(ctx context.Context, ms ...*Member) error {
	if len(ms) == 0 {
		for _, m := range c.Members {
			if m.Running() {
				ms = append(ms, m)
			}
		}
	}
	for _, m := range ms {
		for {
			if !m.Running() {
				return fmt.Errorf("quorum: %s exited; log:\n%s", m.Name, m.LogTail(30))
			}
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := c.serving(pctx, m)
			cancel()
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("quorum: %s does not serve: %v (%w); log:\n%s", m.Name, err, ctx.Err(), m.LogTail(30))
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// Close kills every member and removes the cluster's directory when the
// cluster made it. It is safe to call more than once.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	for _, m := range c.Members {
		m.Kill()
	}
	if c.ownDir {
		return os.RemoveAll(c.dir)
	}
	return nil
}

// freePorts reserves n distinct free loopback ports. They are held until
// all are found, so none repeats; another process may still take one
// before a member binds it (start reports that as a bind failure).
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("quorum: reserving a loopback port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// bindFailed reports whether a member's log says it lost a port.
func bindFailed(m *Member) bool {
	t := strings.ToLower(m.LogTail(200))
	return strings.Contains(t, "address already in use") || strings.Contains(t, "bindexception")
}

// startAll starts every member and waits until all serve; when one lost
// its port to another process it reports retry.
func (c *Cluster) startAll(ctx context.Context) (retry bool, err error) {
	for _, m := range c.Members {
		if err := m.Start(); err != nil {
			return false, err
		}
	}
	if err := c.WaitServing(ctx); err != nil {
		for _, m := range c.Members {
			if bindFailed(m) {
				return true, err
			}
		}
		return false, err
	}
	return false, nil
}

// start builds members with mk (given fresh ports each attempt) and
// starts them, retrying with other ports when one was taken meanwhile.
func start(ctx context.Context, kind Kind, o Options, portsPer int,
	mk func(c *Cluster, ports []int) error,
	serving func(ctx context.Context, m *Member) (string, error)) (*Cluster, error) {
	dir, own, err := o.defaults(kind)
	if err != nil {
		return nil, err
	}
	var last error
	for attempt := 1; attempt <= 3; attempt++ {
		c := &Cluster{Kind: kind, dir: filepath.Join(dir, fmt.Sprintf("run%d", attempt)), serving: serving}
		if err := os.MkdirAll(c.dir, 0o700); err != nil {
			return nil, err
		}
		ports, err := freePorts(o.Members * portsPer)
		if err == nil {
			err = mk(c, ports)
		}
		retry := false
		if err == nil {
			retry, err = c.startAll(ctx)
		}
		if err == nil {
			c.dir, c.ownDir = dir, own
			return c, nil
		}
		_ = c.Close()
		last = err
		if !retry {
			break
		}
	}
	if own {
		_ = os.RemoveAll(dir)
	}
	return nil, last
}
