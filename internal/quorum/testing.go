package quorum

import (
	"context"
	"testing"
	"time"

	"github.com/kiterpc/kite/internal/testkit"
)

// StartTimeout bounds starting a cluster from the testing helpers: three
// JVMs on a busy 2-core machine take a few seconds; etcd about one.
const StartTimeout = 60 * time.Second

// ZooKeeper starts a ZooKeeper ensemble of n members for t, closed when
// t ends (also on failure). Without the zookeeper package the test is
// skipped, or fails under CI=true (testkit.Missing).
func ZooKeeper(t testing.TB, n int) *Cluster {
	t.Helper()
	if why := ZooKeeperAvailable(); why != "" {
		testkit.Missing(t, "%s", why)
	}
	return startT(t, StartZooKeeper, n)
}

// Etcd starts an etcd cluster of n members for t, as ZooKeeper does.
func Etcd(t testing.TB, n int) *Cluster {
	t.Helper()
	if why := EtcdAvailable(); why != "" {
		testkit.Missing(t, "%s", why)
	}
	return startT(t, StartEtcd, n)
}

func startT(t testing.TB, startFn func(context.Context, Options) (*Cluster, error), n int) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	began := time.Now()
	c, err := startFn(ctx, Options{Members: n})
	if err != nil {
		t.Fatalf("starting the cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range c.Members {
				t.Logf("%s log (last lines):\n%s", m.Name, m.LogTail(15))
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("closing the %s cluster: %v", c.Kind, err)
		}
	})
	t.Logf("%s: %d members serving after %v: %v", c.Kind, n, time.Since(began).Round(time.Millisecond), c.Addrs())
	return c
}

// WaitLeader polls (every 20 ms) until a member leads and every running
// member serves, failing t after bound; it returns the leader.
func (c *Cluster) WaitLeader(t testing.TB, bound time.Duration) *Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := c.WaitServing(ctx); err != nil {
		t.Fatalf("%s cluster: %v", c.Kind, err)
	}
	for {
		l, err := c.Leader(ctx)
		if err == nil {
			return l
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s cluster: no leader within %v: %v", c.Kind, bound, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
