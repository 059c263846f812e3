package hosts

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/internal/netns"
	weighted "github.com/kiterpc/kite/plugins/lb-weighted"
	"github.com/kiterpc/kite/spi"
)

const (
	// slowStart is the client balancer's slow_start window.
	slowStart = 4 * time.Second
	// fairShare is a host's share of three equal ones; "full share" is
	// 90% of it over shareWindow.
	fairShare   = 1.0 / 3
	fullShare   = 0.9 * fairShare
	shareWindow = 500 * time.Millisecond
)

// TestHostRejoinsWithSlowStart is scenario 5 of issue 14: three hosts
// register in etcd (running on a fourth host, leases of registryTTL) and
// serve a client whose weighted balancer has a slow start. One host is
// partitioned from everything until its lease expires and the client
// drops it; healed, it re-registers by itself, gets its first calls at
// once but few of them, and reaches its full share over the slow-start
// window — not at once, not much later. No call fails or is lost.
func TestHostRejoinsWithSlowStart(t *testing.T) {
	s := &summary{scenario: "rejoin (5)"}
	s.rounds = rounds(t, func(t *testing.T) { rejoinRound(t, s) })
	s.print(t)
}

func hasInstance(c *core.Client, addr string) bool {
	return slices.ContainsFunc(c.Instances(), func(in spi.Instance) bool { return in.Addr == addr })
}

// share is server's share of the successes in (from, to].
func share(hits []hit, server string, from, to time.Time) (float64, int) {
	n, mine := 0, 0
	for _, h := range hits {
		if h.at.After(from) && !h.at.After(to) {
			n++
			if h.server == server {
				mine++
			}
		}
	}
	if n == 0 {
		return 0, 0
	}
	return float64(mine) / float64(n), n
}

func rejoinRound(t *testing.T, s *summary) {
	lab := netns.New(t)
	etcd := startEtcd(t, lab)
	hs := startHosts(t, lab, 3, etcd)
	victim := hs[0]
	reg, err := etcdRegistry(etcd)
	require.NoError(t, err)
	t.Cleanup(func() { _ = reg.Close() })
	c := partitionClient(t, core.ClientOptions{
		Service: service, Registry: reg,
		Balancer: weighted.New(weighted.Options{SlowStart: slowStart}),
	})
	waitFor(t, 10*time.Second, "three instances registered", func() bool { return len(c.Instances()) == 3 })
	l := startLoad(t, c, "Echo.Echo", 8, callDeadline)
	warm := time.Now()
	waitFor(t, 10*time.Second, "load reaching all three hosts", func() bool {
		return l.ok() >= 300 && len(l.serversSince(warm)) == 3
	})
	before := c.Stats()

	require.NoError(t, victim.Partition())
	gone := waitFor(t, registryTTL+5*time.Second, "the victim's instance expired", func() bool { return !hasInstance(c, victim.addr) })
	require.NoError(t, victim.Heal())
	healed := time.Now()
	rereg := waitFor(t, 15*time.Second, "the victim re-registered", func() bool { return hasInstance(c, victim.addr) })
	back := healed.Add(rereg)
	var first time.Time
	waitFor(t, slowStart, "the victim's first call after re-registering", func() bool {
		var ok bool
		first, ok = l.firstHit(victim.Name, back)
		return ok
	})
	var full time.Time
	waitFor(t, slowStart+5*time.Second, "the victim's full share", func() bool {
		now := time.Now()
		sh, n := share(l.hitsSince(now.Add(-shareWindow)), victim.Name, now.Add(-shareWindow), now)
		if n >= 100 && sh >= fullShare {
			full = now
			return true
		}
		return false
	})
	// One more window at full share: the ramp is over, not a fluke.
	waitFor(t, 2*shareWindow, "another window", func() bool { return time.Since(full) > shareWindow })
	hits := l.hitsSince(back)
	early, nEarly := share(hits, victim.Name, back, back.Add(shareWindow))
	after, nAfter := share(hits, victim.Name, full, full.Add(shareWindow))
	r := l.finish(t)
	st := c.Stats()

	toFirst, toFull := first.Sub(back), full.Sub(back)
	t.Logf("partitioned %s: dropped from the client's view %s after the cut (lease %s); healed, re-registered after %s; first call %s later; full share (>= %.0f%% over %s) %s after re-registering (slow start %s)",
		victim.Name, gone.Round(time.Millisecond), registryTTL, rereg.Round(time.Millisecond),
		toFirst.Round(time.Millisecond), 100*fullShare, shareWindow, toFull.Round(time.Millisecond), slowStart)
	t.Logf("share of %s: %.1f%% of %d calls in the first %s, %.1f%% of %d once full", victim.Name, 100*early, nEarly, shareWindow, 100*after, nAfter)
	t.Logf("load: %s; retries %d, ejections %d", r, st.Retries-before.Retries, st.Ejections-before.Ejections)
	assert.Zero(t, r.Lost, "calls outlived their deadline")
	assert.Zero(t, r.Failed, "calls failed: %v", r.Samples)
	assert.Less(t, toFirst, slowStart/4, "first traffic early in the window")
	assert.Less(t, early, fairShare/2, "ramped: a small share at first")
	assert.Greater(t, toFull, slowStart/2, "ramped: the full share not at once")
	assert.Less(t, toFull, slowStart+time.Second, "the full share within the slow-start window")
	assert.Greater(t, after, fullShare*0.8, "the full share holds")
	s.add(r)
	s.failovers += int(st.Retries - before.Retries)
	s.detect = append(s.detect, gone)
	s.recover = append(s.recover, rereg)
	s.firstTraffic = append(s.firstTraffic, toFirst)
	s.fullShare = append(s.fullShare, toFull)
}
