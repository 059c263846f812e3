package hosts

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/internal/netns"
	"github.com/kiterpc/kite/spi"
)

// The clients' settings in the partition scenarios.
const (
	hbInterval     = 200 * time.Millisecond
	hbTimeout      = 300 * time.Millisecond
	connectTimeout = 300 * time.Millisecond
	// hbBound: a connection to a silent host is declared dead within the
	// heartbeat interval plus its timeout, each seen at the next janitor
	// tick (min(interval, timeout)/2), plus scheduling slack.
	hbBound = hbInterval + hbTimeout + hbInterval + 300*time.Millisecond
	// ejectBound: the breaker opens after breakerFailures consecutive
	// failures; the calls in flight when the heartbeat fails are those,
	// else the redials that time out after connectTimeout.
	ejectBound      = hbBound + connectTimeout + 500*time.Millisecond
	breakerFailures = 3
	baseEjection    = 3 * time.Second
	callDeadline    = 2 * time.Second
)

// partitionClient is the client the partition scenarios call through:
// a callDeadline timeout unless opts has one, fast heartbeats, Echo.Echo idempotent (Echo.Write is not), a breaker
// that ejects after three failures in a row.
func partitionClient(t *testing.T, opts core.ClientOptions) *core.Client {
	opts.HeartbeatInterval = hbInterval
	opts.HeartbeatTimeout = hbTimeout
	opts.ConnectTimeout = connectTimeout
	opts.ReconnectBackoffMin = 20 * time.Millisecond
	opts.ReconnectBackoffMax = 200 * time.Millisecond
	if opts.Timeout == 0 {
		opts.Timeout = callDeadline
	}
	opts.Retry = &resilience.Policy{MaxAttempts: 3, Backoff: "5ms..50ms"}
	opts.Methods = map[string]core.MethodOptions{"Echo.Echo": {Idempotent: true}}
	opts.Breaker = &resilience.BreakerConfig{ConsecutiveFailures: breakerFailures, BaseEjection: baseEjection}
	return newClient(t, opts)
}

// TestPartitionedHostEjected is scenario 3 of issue 14: three hosts serve
// a client under load; one is cut off with nft drop rules both ways (no
// RST, no FIN: it looks dead). The heartbeat declares its connection dead
// and the breaker ejects it within ejectBound; idempotent calls in
// flight on it (the load's, and two asleep there) fail over to the others
// and succeed (no call fails), non-idempotent
// ones end with a clear Unavailable naming the heartbeat, and no call
// outlives its deadline. Healed, the host gets calls again once its
// ejection ends.
func TestPartitionedHostEjected(t *testing.T) {
	s := &summary{scenario: "partition (3)"}
	s.rounds = rounds(t, func(t *testing.T) { partitionRound(t, s) })
	s.print(t)
}

func partitionRound(t *testing.T, s *summary) {
	lab := netns.New(t)
	hs := startHosts(t, lab, 3, "")
	victim := hs[0]
	c := partitionClient(t, core.ClientOptions{Targets: addrs(hs)})
	// A second client that only knows the victim, for calls that are
	// surely on it when the partition starts.
	pinned := partitionClient(t, core.ClientOptions{Targets: []string{victim.addr}})

	l := startLoad(t, c, "Echo.Echo", 8, callDeadline)
	warm := time.Now()
	waitFor(t, 10*time.Second, "load reaching all three hosts", func() bool {
		return l.ok() >= 300 && len(l.serversSince(warm)) == 3
	})

	// Non-idempotent calls asleep on the victim when it goes away.
	const writes = 3
	type outcome struct {
		err error
		end time.Time
	}
	results := make(chan outcome, writes)
	var wg sync.WaitGroup
	for i := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := call(ctx, pinned, "Echo.Write", -1-i, 5000)
			results <- outcome{err, time.Now()}
		}()
	}
	// Idempotent calls asleep on every host, two on the victim: a client
	// of their own with no other traffic, whose round-robin over three
	// equal hosts places two of six calls on each.
	const sleepers, sleepMs = 6, 1500
	sleepy := partitionClient(t, core.ClientOptions{Targets: addrs(hs), Timeout: 10 * time.Second})
	type answer struct {
		r   *Resp
		err error
	}
	answers := make(chan answer, sleepers)
	for i := range sleepers {
		go func() {
			r, err := call(context.Background(), sleepy, "Echo.Echo", 1000+i, sleepMs)
			answers <- answer{r, err}
		}()
	}
	waitFor(t, 5*time.Second, "the writes and two idempotent calls asleep on the victim", func() bool {
		return hostStats(t, victim.addr).Running >= writes+sleepers/3
	})
	before := c.Stats()

	require.NoError(t, victim.Partition())
	cut := time.Now()
	detect := waitFor(t, ejectBound, "the victim ejected", func() bool {
		return slices.Contains(c.Stats().Ejected, victim.addr)
	})
	wg.Wait()
	close(results)
	for r := range results {
		code, msg := codeOf(r.err)
		assert.Equal(t, spi.Unavailable, code, "a non-idempotent call in flight on the partitioned host: %s", msg)
		assert.Contains(t, msg, "heartbeat")
		assert.Less(t, r.end.Sub(cut), hbBound, "ended within the heartbeat bound")
		t.Logf("non-idempotent call in flight: failed %s after the partition: %s", r.end.Sub(cut).Round(time.Millisecond), msg)
	}
	for range sleepers {
		a := <-answers
		require.NoError(t, a.err, "an idempotent call asleep when the partition began")
		assert.NotEqual(t, victim.Name, a.r.Server)
	}
	sst := sleepy.Stats()
	assert.GreaterOrEqual(t, sst.Retries, uint64(sleepers/3), "the calls asleep on the victim were retried elsewhere")
	t.Logf("%d idempotent calls asleep on the hosts when the partition began, %d of them on %s: all answered, %d after a retry on another host, %s after the cut",
		sleepers, sleepers/3, victim.Name, sst.Retries, time.Since(cut).Round(time.Millisecond))
	// Calls go on, on the other two.
	ejected := l.ok()
	waitFor(t, 5*time.Second, "calls succeed while the victim is cut off", func() bool { return l.ok() >= ejected+300 })
	during := c.Stats()

	require.NoError(t, victim.Heal())
	healed := time.Now()
	back, ok := time.Duration(0), false
	// A half-open probe may have met the partition and doubled the
	// ejection: up to 2 x baseEjection to wait, then a probe.
	waitFor(t, 2*baseEjection+ejectBound+2*time.Second, "the victim answers again", func() bool {
		var at time.Time
		at, ok = l.firstHit(victim.Name, healed)
		back = at.Sub(healed)
		return ok
	})
	r := l.finish(t)
	failovers := int(during.Retries - before.Retries)
	t.Logf("partitioned %s: ejected %s after the cut (bound %s); %d calls failed over meanwhile; answers again %s after healing (ejection %s, doubled per failed probe)",
		victim.Name, detect.Round(time.Millisecond), ejectBound, failovers, back.Round(time.Millisecond), baseEjection)
	t.Logf("load: %s", r)
	assert.Zero(t, r.Lost, "calls outlived their deadline")
	assert.Zero(t, r.Failed, "idempotent calls failed instead of failing over: %v", r.Samples)
	assert.Positive(t, failovers, "calls in flight on the victim failed over")
	s.add(r)
	s.failovers += failovers
	s.detect = append(s.detect, detect)
	s.recover = append(s.recover, back)
}
