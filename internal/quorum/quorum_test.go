//go:build linux

package quorum

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testFailover kills c's leader, waits for another member to lead,
// brings the killed one back as a follower, then checks that Close ends
// every process and removes the directory.
func testFailover(t *testing.T, c *Cluster) {
	leader := c.WaitLeader(t, 30*time.Second)
	pid := leader.Pid()
	if pid == 0 {
		t.Fatalf("leader %s has no process", leader.Name)
	}
	began := time.Now()
	leader.Kill()
	if leader.Running() {
		t.Fatalf("%s still running after Kill", leader.Name)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("pid %d of %s still exists after Kill", pid, leader.Name)
	}
	next := c.WaitLeader(t, 30*time.Second)
	if next == leader {
		t.Fatalf("the killed member %s still leads", leader.Name)
	}
	t.Logf("%s: %s killed, %s leads after %v", c.Kind, leader.Name, next.Name, time.Since(began).Round(time.Millisecond))

	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	if err := leader.Start(); err == nil {
		t.Fatal("a second Start of a running member was accepted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitServing(ctx, leader); err != nil {
		t.Fatal(err)
	}
	role, err := c.Role(ctx, leader)
	if err != nil || role != "follower" {
		t.Fatalf("restarted %s: role %q, %v; want follower", leader.Name, role, err)
	}

	pids := []int{}
	for _, m := range c.Members {
		pids = append(pids, m.Pid())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if err := syscall.Kill(p, 0); err == nil {
			t.Errorf("pid %d still exists after Close", p)
		}
	}
	if _, err := os.Stat(c.Dir()); !os.IsNotExist(err) {
		t.Errorf("cluster dir %s not removed: %v", c.Dir(), err)
	}
}

func TestZooKeeperFailover(t *testing.T) { testFailover(t, ZooKeeper(t, 3)) }

func TestEtcdFailover(t *testing.T) { testFailover(t, Etcd(t, 3)) }

func TestOptionsChecked(t *testing.T) {
	if _, err := StartEtcd(context.Background(), Options{Members: 12}); err == nil {
		t.Fatal("12 members accepted")
	}
}
