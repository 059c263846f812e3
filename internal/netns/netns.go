package netns

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/kiterpc/kite/internal/testkit"
)

// Prefix starts every namespace and link name this package creates,
// followed by the creating process's pid.
const Prefix = "kt"

// Require ends the test through testkit.Missing (a failure under
// CI=true, a skip otherwise) unless it runs as root with ip and nft.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testkit.Missing(t, "network namespaces need root (running as uid %d)", os.Geteuid())
	}
	testkit.Tool(t, "ip", "Debian iproute2; scripts/ensure-netns.sh installs it")
	testkit.Tool(t, "nft", "Debian nftables; scripts/ensure-netns.sh installs it")
}

var labSeq atomic.Int64

// Lab is one private network of hosts. Its methods are safe for
// concurrent use.
type Lab struct {
	name   string // kt<pid>-<n>
	subnet string // "10.231.X"
	sw     string // the switch namespace
	link   string // the test namespace's veth end

	mu    sync.Mutex
	hosts []*Host
}

// New builds an empty lab: a bridge in a namespace of its own and a link
// from it into the test's namespace, whose address is ClientIP. It is
// torn down when the test ends.
func New(t testing.TB) *Lab {
	t.Helper()
	Require(t)
	Sweep(t.Logf)
	l := &Lab{name: fmt.Sprintf("%s%d-%d", Prefix, os.Getpid(), labSeq.Add(1))}
	l.sw = l.name + "-sw"
	l.link = l.name + "c"
	t.Cleanup(l.Close) // before anything exists: a half-built lab goes too
	if err := ip("netns", "add", l.sw); err != nil {
		t.Fatalf("netns: building lab %s: %v", l.name, err)
	}
	// Test processes running side by side (go test runs packages in
	// parallel) pick their subnets one at a time: the choice and the
	// address that claims it happen under a lock on the namespaces'
	// directory, which ip netns add has just made sure exists.
	unlock, err := lockDir(netnsDir)
	if err != nil {
		t.Fatalf("netns: %v", err)
	}
	defer unlock()
	subnet, err := freeSubnet()
	if err != nil {
		t.Fatalf("netns: %v", err)
	}
	l.subnet = subnet
	steps := [][]string{
		{"-n", l.sw, "link", "set", "lo", "up"},
		{"-n", l.sw, "link", "add", "br0", "type", "bridge"},
		{"-n", l.sw, "link", "set", "br0", "up"},
		{"link", "add", l.link, "type", "veth", "peer", "name", "client", "netns", l.sw},
		{"-n", l.sw, "link", "set", "client", "master", "br0"},
		{"-n", l.sw, "link", "set", "client", "up"},
		{"addr", "add", l.ClientIP() + "/24", "dev", l.link},
		{"link", "set", l.link, "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			t.Fatalf("netns: building lab %s: %v", l.name, err)
		}
	}
	return l
}

// Name is the lab's name, the prefix of its namespaces.
func (l *Lab) Name() string { return l.name }

// ClientIP is the test namespace's address on the lab's network.
func (l *Lab) ClientIP() string { return l.subnet + ".1" }

// Hosts returns the hosts added so far.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Host(nil), l.hosts...)
}

// AddHost adds a host named name (at most 12 characters: a-z, 0-9)
// with its own namespace, address and an empty nftables table.
func (l *Lab) AddHost(t testing.TB, name string) *Host {
	t.Helper()
	if !validName.MatchString(name) {
		t.Fatalf("netns: host name %q: want 1-12 of a-z, 0-9", name)
	}
	l.mu.Lock()
	idx := len(l.hosts)
	h := &Host{Name: name, NS: l.name + "-" + name, IP: fmt.Sprintf("%s.%d", l.subnet, 10+idx), lab: l}
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	port := "p" + name // the bridge's side, in the switch namespace
	steps := [][]string{
		{"netns", "add", h.NS},
		{"-n", h.NS, "link", "set", "lo", "up"},
		{"-n", l.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
		{"-n", l.sw, "link", "set", port, "master", "br0"},
		{"-n", l.sw, "link", "set", port, "up"},
		{"-n", h.NS, "addr", "add", h.IP + "/24", "dev", "eth0"},
		{"-n", h.NS, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			t.Fatalf("netns: adding host %s: %v", name, err)
		}
	}
	if err := h.apply(0, false); err != nil {
		t.Fatalf("netns: host %s: %v", name, err)
	}
	return h
}

var validName = regexp.MustCompile(`^[a-z0-9]{1,12}$`)

// Close removes the lab's namespaces and links. Processes still running
// in a host keep its namespace alive until they exit; the tests' own are
// stopped by their cleanups, which run before this one.
func (l *Lab) Close() {
	_ = ip("link", "del", l.link) // removes the peer in the switch too
	l.mu.Lock()
	hosts := l.hosts
	l.mu.Unlock()
	for _, h := range hosts {
		_ = ip("netns", "del", h.NS)
	}
	_ = ip("netns", "del", l.sw)
}

// Host is a namespace on the lab's network.
type Host struct {
	Name string // as given to AddHost
	NS   string // the namespace's name
	IP   string // its address on the lab's network
	lab  *Lab

	mu     sync.Mutex
	loss   int
	parted bool
}

// Addr is host:port on the lab's network.
func (h *Host) Addr(port int) string { return fmt.Sprintf("%s:%d", h.IP, port) }

// Partition drops every packet to and from the host's eth0, silently.
func (h *Host) Partition() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.apply(h.loss, true); err != nil {
		return err
	}
	h.parted = true
	return nil
}

// Heal ends a partition (loss set by SetLoss stays).
func (h *Host) Heal() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.apply(h.loss, false); err != nil {
		return err
	}
	h.parted = false
	return nil
}

// SetLoss drops pct percent of the packets in each direction at random;
// 0 ends the loss.
func (h *Host) SetLoss(pct int) error {
	if pct < 0 || pct > 100 {
		return fmt.Errorf("netns: loss %d%% is not within [0, 100]", pct)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.apply(pct, h.parted); err != nil {
		return err
	}
	h.loss = pct
	return nil
}

// apply replaces the host's nftables table in one transaction.
func (h *Host) apply(loss int, parted bool) error {
	var in, out string
	switch {
	case parted:
		in, out = `iifname "eth0" drop`, `oifname "eth0" drop`
	case loss > 0:
		in = fmt.Sprintf(`iifname "eth0" numgen random mod 100 < %d drop`, loss)
		out = fmt.Sprintf(`oifname "eth0" numgen random mod 100 < %d drop`, loss)
	}
	// Declaring the table first makes the delete succeed when it does
	// not exist yet; the whole file is one atomic transaction.
	ruleset := fmt.Sprintf(`table inet kite
delete table inet kite
table inet kite {
	chain in {
		type filter hook input priority 0; policy accept;
		%s
	}
	chain out {
		type filter hook output priority 0; policy accept;
		%s
	}
}
`, in, out)
	cmd := exec.Command("ip", "netns", "exec", h.NS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s", h.NS, err, bytes.TrimSpace(b))
	}
	return nil
}

// Rules returns the host's nftables ruleset, for diagnostics.
func (h *Host) Rules() string {
	b, err := exec.Command("ip", "netns", "exec", h.NS, "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("nft list ruleset in %s: %v: %s", h.NS, err, b)
	}
	return string(b)
}

// Command returns a command that runs name inside the host's namespace.
// It dies with the test binary (parent-death signal).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	// ip netns exec execs name in place: the signal carries over.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

func ip(args ...string) error {
	b, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(b))
	}
	return nil
}

// freeSubnet returns "10.231.X" for an X no address of the test's
// namespace is in.
func freeSubnet() (string, error) {
	b, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		return "", fmt.Errorf("ip addr show: %v", err)
	}
	start := os.Getpid()*7 + int(labSeq.Load())
	for i := range 250 {
		x := (start + i) % 250
		s := fmt.Sprintf("10.231.%d", x)
		if !bytes.Contains(b, []byte(" "+s+".")) {
			return s, nil
		}
	}
	return "", fmt.Errorf("no free 10.231.X.0/24 subnet")
}

// netnsDir is where ip netns keeps its named namespaces.
const netnsDir = "/run/netns"

// lockDir takes an exclusive flock on dir, waiting for it.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %v", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("locking %s: %v", dir, err)
	}
	return func() { _ = f.Close() }, nil // closing releases the lock
}

var owned = regexp.MustCompile(`^` + Prefix + `(\d+)-`)

// Sweep removes the namespaces and links that test processes no longer
// running left behind (a test binary killed before its cleanups ran),
// reporting each through logf. Those of running processes are theirs.
func Sweep(logf func(format string, args ...any)) {
	stale := func(name string) bool {
		m := owned.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() {
			return false
		}
		_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		return os.IsNotExist(err)
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if stale(name) {
				logf("netns: removing stale link %s", name)
				_ = ip("link", "del", name)
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && stale(f[0]) {
				logf("netns: removing stale namespace %s", f[0])
				_ = ip("netns", "del", f[0])
			}
		}
	}
}
