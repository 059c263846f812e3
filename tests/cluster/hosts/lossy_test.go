package hosts

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/internal/faultproxy"
	"github.com/kiterpc/kite/internal/netns"
	"github.com/kiterpc/kite/spi"
)

// The lossy links of scenario 4.
const (
	linkLatency = 50 * time.Millisecond // each way
	linkJitter  = 10 * time.Millisecond
	linkLoss    = 1 // percent of packets, each way
	lossWorkers = 32
	lossRun     = 8 * time.Second
)

// TestLossyLinks is scenario 4 of issue 14: every link between the client
// and the three hosts has 50 ms ± 10 ms of latency each way (a fault
// proxy per host on the path) and loses 1% of its packets each way (nft
// numgen on the hosts). Under a closed-loop load with Kite's default
// client settings (heartbeat, breaker, retry policy and budget) and a 2 s
// deadline, it reports p50/p99 and the error rate, checks that no call is
// lost, that every failure is Unavailable or DeadlineExceeded, and that
// retries stay within the budget's cap — at most budget·calls +
// min_retries_per_second·seconds — also when two hosts refuse every
// connection and a third of the calls want a retry.
func TestLossyLinks(t *testing.T) {
	s := &summary{scenario: "lossy links (4)"}
	var p99s []time.Duration
	var retries, calls2, failed2, retries2, refused2 int
	s.rounds = rounds(t, func(t *testing.T) {
		r, st, r2, st2 := lossyRound(t)
		s.add(r)
		p99s = append(p99s, r.P99)
		retries += int(st.Retries)
		calls2 += r2.Total
		failed2 += r2.Failed
		retries2 += int(st2.Retries)
		refused2 += int(st2.BudgetExhausted)
		s.lost += r2.Lost
	})
	s.failovers = retries
	s.extra = append(s.extra, fmt.Sprintf("p99=[%s] error_rate=%.3f%% retries_per_call=%.4f; two_refusing: calls=%d failed=%d retries_per_call=%.3f budget_refused=%d",
		durs(p99s), 100*float64(s.failed)/float64(max(1, s.calls)), float64(retries)/float64(max(1, s.calls)),
		calls2, failed2, float64(retries2)/float64(max(1, calls2)), refused2))
	s.print(t)
}

func lossyRound(t *testing.T) (loadResult, core.ClientStats, loadResult, core.ClientStats) {
	lab := netns.New(t)
	hs := startHosts(t, lab, 3, "")
	var targets []string
	var proxies []*faultproxy.Proxy
	for i, h := range hs {
		p, err := faultproxy.New(h.addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		require.NoError(t, p.Set(faultproxy.DelayJitter(linkLatency, linkJitter, uint64(i+1))))
		require.NoError(t, h.SetLoss(linkLoss))
		targets = append(targets, p.Addr())
		proxies = append(proxies, p)
	}
	opts := core.ClientOptions{
		Targets: targets,
		Timeout: callDeadline,
		Methods: map[string]core.MethodOptions{"Echo.Echo": {Idempotent: true}},
	}
	pol := resilience.Policy{}.Resolved()
	// budgetCap is the most retries the budget grants a client born at
	// born that placed calls calls.
	budgetCap := func(calls uint64, born time.Time) float64 {
		return pol.Budget*float64(calls) + pol.MinRetriesPerSecond*time.Since(born).Seconds()
	}
	report := func(phase string, r loadResult, st core.ClientStats, born time.Time) {
		t.Logf("%s: %s", phase, r)
		t.Logf("%s: error rate %.3f%%; client: %d calls, %d attempts (%d retries, %.3f per call; cap %.0f = %.1f x calls + %.0f/s x %.1fs), %d retries refused by the budget, %d ejections",
			phase, 100*float64(r.Failed)/float64(max(1, r.Total)), st.Calls, st.Attempts, st.Retries,
			float64(st.Retries)/float64(max(1, st.Calls)), budgetCap(st.Calls, born), pol.Budget, pol.MinRetriesPerSecond,
			time.Since(born).Seconds(), st.BudgetExhausted, st.Ejections)
		assert.Zero(t, r.Lost, "%s: calls outlived their deadline", phase)
		for code := range r.Codes {
			assert.Contains(t, []spi.Code{spi.OK, spi.Unavailable, spi.DeadlineExceeded}, code, "%s: error %s: %s", phase, code, r.Samples[code])
		}
		assert.Equal(t, st.Attempts, st.Calls+st.Retries, "%s: attempts = calls + retries", phase)
		assert.LessOrEqual(t, float64(st.Retries), budgetCap(st.Calls, born), "%s: retries within the budget's cap", phase)
	}

	// Phase 1: the lossy, slow links alone.
	born := time.Now() // the retry budget starts with the client
	c := newClient(t, opts)
	l := startLoad(t, c, "Echo.Echo", lossWorkers, callDeadline)
	time.Sleep(lossRun) // the run's length is the measurement, not a synchronisation
	r := l.finish(t)
	st := c.Stats()
	t.Logf("links %s ± %s each way, %d%% loss each way, %d callers for %s", linkLatency, linkJitter, linkLoss, lossWorkers, lossRun)
	// p99 and the error rate are reported, not asserted: on the shared CI
	// machine they follow its load (p99 139 ms to 914 ms in two runs
	// minutes apart under -race) more than Kite.
	report("lossy links", r, st, born)

	// Phase 2: on the same links, two of the three hosts refuse every
	// connection (their proxies close them on arrival), so that a retry
	// is wanted for a third or more of the calls, far beyond the budget:
	// the budget, not the failures, decides how many attempts are added.
	// The breaker ejects one of the two; MaxEjectionPercent (50) keeps
	// the other in. A new client, so that phase 1's savings (up to 100
	// retries) do not hide the cap.
	for _, p := range proxies[1:] {
		require.NoError(t, p.Set(faultproxy.Cut()))
	}
	born2 := time.Now()
	c2 := newClient(t, opts)
	l = startLoad(t, c2, "Echo.Echo", lossWorkers, callDeadline)
	time.Sleep(lossRun / 2) // the phase's length
	r2 := l.finish(t)
	phase := c2.Stats()
	report("two hosts refusing", r2, phase, born2)
	assert.Positive(t, phase.BudgetExhausted, "the budget, not the failures, bounded the retries")

	var served int64
	for _, h := range hs {
		require.NoError(t, h.SetLoss(0))
		served += hostStats(t, h.addr).Served
	}
	attempts := phase.Attempts + st.Attempts
	t.Logf("hosts served %d requests of %d attempts (refused connections never reach a host)", served, attempts)
	assert.LessOrEqual(t, served, int64(attempts), "the hosts saw no more requests than the clients' attempts")
	return r, st, r2, phase
}
