package netns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// echoEnv makes the test binary a TCP echo server on the address it
// holds (inside a host).
const echoEnv = "KITE_NETNS_ECHO"

func TestMain(m *testing.M) {
	if addr := os.Getenv(echoEnv); addr != "" {
		os.Exit(runEcho(addr))
	}
	os.Exit(m.Run())
}

func runEcho(addr string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		return 2
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

func startEcho(t *testing.T, h *Host) string {
	t.Helper()
	addr := h.Addr(7000)
	p := h.StartSelf(t, 5*time.Second, echoEnv+"="+addr)
	l, ok := p.FirstLine(20 * time.Second)
	require.True(t, ok, "echo server in %s did not start", h.Name)
	require.Equal(t, "ready", strings.TrimSpace(l))
	return addr
}

func echoOnce(c net.Conn, d time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if l != "ping\n" {
		return fmt.Errorf("echo answered %q", l)
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestPartitionLooksLikeADeadHost: the test's namespace reaches a host
// through the bridge; a partition makes it silent both ways — no answer,
// no RST on a new connection, no FIN on an open one — and healing brings
// it back on both connections.
func TestPartitionLooksLikeADeadHost(t *testing.T) {
	l := New(t)
	h1 := l.AddHost(t, "h1")
	h2 := l.AddHost(t, "h2")
	a1, a2 := startEcho(t, h1), startEcho(t, h2)

	c, err := net.DialTimeout("tcp", a1, 2*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, echoOnce(c, 2*time.Second))

	require.NoError(t, h1.Partition())
	assert.Contains(t, h1.Rules(), `iifname "eth0" drop`)
	err = echoOnce(c, 300*time.Millisecond)
	assert.True(t, isTimeout(err), "an open connection goes silent, no FIN or RST: %v", err)
	_, err = net.DialTimeout("tcp", a1, 300*time.Millisecond)
	assert.True(t, isTimeout(err), "a SYN goes unanswered, no RST: %v", err)

	// The other host is untouched.
	c2, err := net.DialTimeout("tcp", a2, 2*time.Second)
	require.NoError(t, err)
	defer c2.Close()
	require.NoError(t, echoOnce(c2, 2*time.Second))

	require.NoError(t, h1.Heal())
	// The old connection carries on once TCP retransmits what it lost.
	require.NoError(t, echoOnce(c, 5*time.Second), "the old connection recovers")
	c3, err := net.DialTimeout("tcp", a1, 2*time.Second)
	require.NoError(t, err)
	defer c3.Close()
	require.NoError(t, echoOnce(c3, 2*time.Second))
}

// TestLoss: with 30% loss each way on a host's link, a burst of
// connection attempts (300 ms each) sees some time out and some succeed;
// the rule is the numgen one.
func TestLoss(t *testing.T) {
	l := New(t)
	h := l.AddHost(t, "h1")
	addr := startEcho(t, h)
	require.NoError(t, h.SetLoss(30))
	assert.Contains(t, h.Rules(), "numgen random mod 100 < 30")
	assert.Error(t, h.SetLoss(101))
	ok, lost := 0, 0
	for range 20 {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			require.True(t, isTimeout(err), "a lost SYN times out: %v", err)
			lost++
			continue
		}
		ok++
		_ = c.Close()
	}
	t.Logf("30%% loss: %d connections in 300 ms, %d timed out", ok, lost)
	assert.Positive(t, ok)
	assert.Positive(t, lost)
	// A partition on top of loss, healed, leaves the loss in force.
	require.NoError(t, h.Partition())
	require.NoError(t, h.Heal())
	assert.Contains(t, h.Rules(), "numgen random mod 100 < 30")
	require.NoError(t, h.SetLoss(0))
	assert.NotContains(t, h.Rules(), "numgen")
}

func namespaces(t *testing.T) string {
	out, err := exec.Command("ip", "netns", "list").Output()
	require.NoError(t, err)
	return string(out)
}

func links(t *testing.T) string {
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	require.NoError(t, err)
	return string(out)
}

// TestCleanup: Close removes every namespace and link of the lab, also
// with processes that were running in it; Sweep removes what a dead test
// process left behind and leaves a live one's alone.
func TestCleanup(t *testing.T) {
	var name, link string
	t.Run("lab", func(t *testing.T) {
		l := New(t)
		startEcho(t, l.AddHost(t, "h1"))
		name, link = l.Name(), l.link
		assert.Contains(t, namespaces(t), name+"-h1")
		assert.Contains(t, links(t), link)
	})
	assert.NotContains(t, namespaces(t), name)
	assert.NotContains(t, links(t), link+"@")

	// 4194305 is above the kernel's largest pid: never a live process.
	dead := fmt.Sprintf("%s4194305-1-sw", Prefix)
	mine := fmt.Sprintf("%s%d-999-sw", Prefix, os.Getpid())
	for _, n := range []string{dead, mine} {
		require.NoError(t, ip("netns", "add", n))
		t.Cleanup(func() { _ = ip("netns", "del", n) })
	}
	deadLink := fmt.Sprintf("%s4194305-1c", Prefix) // a root-side link of a dead run
	peer := fmt.Sprintf("%s4194305-1p", Prefix)
	require.NoError(t, ip("link", "add", deadLink, "type", "veth", "peer", "name", peer))
	t.Cleanup(func() { _ = ip("link", "del", deadLink) })
	var swept []string
	Sweep(func(format string, args ...any) { swept = append(swept, fmt.Sprintf(format, args...)) })
	// Another test process's New may have swept them first.
	for _, s := range swept {
		assert.Contains(t, []string{"netns: removing stale namespace " + dead, "netns: removing stale link " + deadLink, "netns: removing stale link " + peer}, s)
	}
	ns := namespaces(t)
	assert.NotContains(t, ns, dead)
	assert.Contains(t, ns, mine)
	assert.NotContains(t, links(t), deadLink)
}
