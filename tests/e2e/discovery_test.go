package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/spi"
)

// expiry is the servers' session timeout (ZooKeeper) and lease TTL
// (etcd): short, so that expiry and removal are quick to observe. Both
// registries accept it (services.sh runs ZooKeeper with tickTime 500 ms,
// minimum session 1 s; etcd's minimum TTL is about 2 s).
const expiry = 2 * time.Second

// removalSlack is how long after the session or lease timeout a dead
// server may still be listed: ZooKeeper checks sessions once per tick
// (500 ms) and etcd leases every 500 ms, and the watch event then has to
// reach the client.
const removalSlack = 1500 * time.Millisecond

const service = "who"

// backend is a registry under test, as kite.hcl blocks for the servers
// (through their proxies), the client (through its proxy) and an
// observer that talks to the registry directly.
type backend struct {
	name     string
	addr     string
	server   func(addr string) string
	client   func(addr string) string
	observer string
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func zkBackend(t *testing.T) backend {
	addr := testkit.Env(t, "KITE_ZK_ADDR", "run `bash scripts/services.sh up && source .kite/services.env` (make test does)")
	root := "/kite-e2e-" + randomSuffix()
	t.Cleanup(func() { testkit.DeleteZKTree(t, addr, root) })
	return backend{
		name: "zk", addr: addr,
		server: func(a string) string {
			return fmt.Sprintf(`{"servers":[%q],"session_timeout":%q,"root":%q}`, a, expiry.String(), root)
		},
		// The client's own session outlives the outage, so its watches
		// resume where they were.
		client: func(a string) string {
			return fmt.Sprintf(`{"servers":[%q],"session_timeout":"20s","root":%q}`, a, root)
		},
		observer: fmt.Sprintf(`{"servers":[%q],"root":%q}`, addr, root),
	}
}

func etcdBackend(t *testing.T) backend {
	addr := testkit.Env(t, "KITE_ETCD_ADDR", "run `bash scripts/services.sh up && source .kite/services.env` (make test does)")
	// Every key lives on a lease, so nothing is left behind to clean up.
	prefix := "/kite-e2e-" + randomSuffix()
	return backend{
		name: "etcd", addr: addr,
		server: func(a string) string {
			return fmt.Sprintf(`{"endpoints":[%q],"ttl":%q,"dial_timeout":"1s","prefix":%q}`, a, expiry.String(), prefix)
		},
		client: func(a string) string {
			return fmt.Sprintf(`{"endpoints":[%q],"dial_timeout":"1s","prefix":%q}`, a, prefix)
		},
		observer: fmt.Sprintf(`{"endpoints":[%q],"dial_timeout":"2s","prefix":%q}`, addr, prefix),
	}
}

func buildRegistry(t *testing.T, name, cfg string) spi.Registry {
	t.Helper()
	r, err := spi.Default.BuildRegistry(name, spi.Config(cfg))
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestZooKeeper(t *testing.T) { runDiscovery(t, zkBackend(t)) }

func TestEtcd(t *testing.T) { runDiscovery(t, etcdBackend(t)) }

// runDiscovery is the whole story against one registry; see the package
// documentation.
func runDiscovery(t *testing.T, b backend) {
	ctx := context.Background()
	observer := buildRegistry(t, b.name, b.observer)

	// Three servers, weights 1:2:7, each reaching the registry through a
	// proxy of its own.
	weights := []int{1, 2, 7}
	var proxies []*proxy
	var servers []*serverProc
	for i, w := range weights {
		p := startProxy(t, b.addr)
		proxies = append(proxies, p)
		raw := json.RawMessage(b.server(p.Addr()))
		servers = append(servers, startServer(t, serverSpec{
			Name: fmt.Sprintf("s%d", i+1), Service: service, Registry: b.name, Config: raw, Weight: w,
		}))
	}
	addrs := func(ps ...*serverProc) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = p.addr
		}
		sort.Strings(out)
		return out
	}
	all := addrs(servers...)

	clientProxy := startProxy(t, b.addr)
	creg := buildRegistry(t, b.name, b.client(clientProxy.Addr()))
	bal, err := spi.Default.BuildBalancer("weighted", nil)
	require.NoError(t, err)
	c, err := core.NewClient(core.ClientOptions{
		Service:  service,
		Registry: creg,
		Balancer: bal,
		Timeout:  3 * time.Second,
		Retry:    &resilience.Policy{Backoff: "5ms..100ms"},
		Methods:  map[string]core.MethodOptions{"Echo.Who": {Idempotent: true}},
		Logger:   hclog.NewNullLogger(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	clientSees := func(want []string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		require.Eventually(t, func() bool { return slices.Equal(instanceAddrs(c.Instances()), want) },
			within, 5*time.Millisecond, "client instances %v, want %v", instanceAddrs(c.Instances()), want)
		return time.Since(start)
	}
	registryHas := func(want []string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		var got []spi.Instance
		require.Eventually(t, func() bool {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			got, err = observer.Resolve(rctx, service)
			return err == nil && slices.Equal(instanceAddrs(got), want)
		}, within, 10*time.Millisecond, "registry lists %v (%v), want %v", instanceAddrs(got), err, want)
		return time.Since(start)
	}
	clientSees(all, 20*time.Second)

	// 1. Weights 1:2:7 split 10,000 calls within ±2 percentage points.
	const calls = 10000
	res := burst(c, calls, 8)
	require.Zero(t, res.failed, "first failure: %v", res.err)
	t.Logf("[%s] split of %d calls over weights 1:2:7: %s", b.name, calls, res.split(servers))
	for i, s := range servers {
		want := float64(weights[i]) / 10
		assert.InDelta(t, want, res.share(s.spec.Name), 0.02, "share of %s (weight %d)", s.spec.Name, weights[i])
	}

	// 2. The registry becomes unreachable for everyone. The registry
	// expires the servers' sessions or leases (the observer, still
	// connected, sees the service empty), yet the client, which cannot
	// know, keeps calling the instances it knows, without a failure.
	outage := startLoad(c, 4)
	clientProxy.Cut()
	for _, p := range proxies {
		p.Cut()
	}
	expiredAfter := registryHas(nil, 10*expiry)
	cutLoad := outage.finish()
	during := burst(c, 2000, 4)
	stillKnown := instanceAddrs(c.Instances())
	t.Logf("[%s] registry unreachable: the servers' sessions/leases expired %v after the cut; meanwhile %d calls succeeded, %d failed; then %d more: %s",
		b.name, expiredAfter.Round(10*time.Millisecond), cutLoad.ok, cutLoad.failed, during.ok, during.split(servers))
	require.Zero(t, cutLoad.failed, "first failure: %v", cutLoad.err)
	require.Zero(t, during.failed, "first failure: %v", during.err)
	assert.Positive(t, cutLoad.ok)
	assert.Equal(t, all, stillKnown, "the client keeps the last known instances")
	for i, s := range servers {
		assert.InDelta(t, float64(weights[i])/10, during.share(s.spec.Name), 0.02, "share of %s while the registry is away", s.spec.Name)
	}

	// 3. The registry is back: every server finds its session or lease
	// gone and registers again, and all instances are listed.
	for _, p := range proxies {
		p.Restore()
	}
	backAfter := registryHas(all, 30*time.Second)
	clientProxy.Restore()
	// The client's watch resumes: it sees a change made now, which also
	// proves that everything before it has been delivered.
	sentinel := spi.Instance{Service: service, Addr: "127.0.0.1:1", Weight: 1}
	require.NoError(t, observer.Register(ctx, sentinel))
	withSentinel := append(slices.Clone(all), sentinel.Addr)
	sort.Strings(withSentinel)
	resumedAfter := clientSees(withSentinel, 30*time.Second)
	require.NoError(t, observer.Deregister(ctx, sentinel))
	clientSees(all, 10*time.Second)
	after := burst(c, 1000, 4)
	t.Logf("[%s] registry back: all %d instances re-registered %v after the restore; the client's watch delivered a new change %v after its own restore; %d calls: %s",
		b.name, len(all), backAfter.Round(10*time.Millisecond), resumedAfter.Round(10*time.Millisecond), after.ok, after.split(servers))
	require.Zero(t, after.failed, "first failure: %v", after.err)
	for _, s := range servers {
		assert.Positive(t, after.counts[s.spec.Name], "%s is called again", s.spec.Name)
	}

	// 4. SIGKILL the heaviest server under load: no idempotent call
	// fails, and the server leaves rotation within its session or lease
	// timeout.
	before := c.Stats()
	victim := servers[2]
	load := startLoad(c, 8)
	require.Eventually(t, func() bool { return load.seq.Load() > 200 }, 10*time.Second, time.Millisecond, "load started")
	killed := time.Now()
	victim.Kill(t)
	var ejectedAfter time.Duration
	require.Eventually(t, func() bool {
		if ejectedAfter == 0 && slices.Contains(c.Stats().Ejected, victim.addr) {
			ejectedAfter = time.Since(killed)
		}
		return !slices.Contains(instanceAddrs(c.Instances()), victim.addr)
	}, expiry+10*time.Second, time.Millisecond, "the killed server stays listed")
	removedAfter := time.Since(killed)
	// Keep calling a little after the removal.
	tail := load.seq.Load()
	require.Eventually(t, func() bool { return load.seq.Load() > tail+500 }, 10*time.Second, time.Millisecond)
	killLoad := load.finish()
	st := c.Stats()
	t.Logf("[%s] SIGKILL of %s (weight 7) under load: ejected by its breaker after %v, removed from rotation after %v (timeout %v); %d calls, %d failed; %d attempts, %d retries, %d refused by the budget, %d ejections; split %s",
		b.name, victim.spec.Name, ejectedAfter.Round(100*time.Microsecond), removedAfter.Round(10*time.Millisecond), expiry,
		killLoad.ok+killLoad.failed, killLoad.failed, st.Attempts-before.Attempts, st.Retries-before.Retries,
		st.BudgetExhausted-before.BudgetExhausted, st.Ejections-before.Ejections, killLoad.split(servers))
	require.Zero(t, killLoad.failed, "first failure: %v", killLoad.err)
	assert.Less(t, removedAfter, expiry+removalSlack, "removed within the session/lease timeout")
	assert.Equal(t, addrs(servers[0], servers[1]), instanceAddrs(c.Instances()))
	registryHas(addrs(servers[0], servers[1]), time.Second)
}

func instanceAddrs(ins []spi.Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.Addr
	}
	sort.Strings(out)
	return out
}

// result tallies calls by the server that answered.
type result struct {
	counts map[string]int
	ok     int
	failed int
	err    error // the first failure
}

func (r *result) add(o *result) {
	for k, v := range o.counts {
		r.counts[k] += v
	}
	r.ok += o.ok
	r.failed += o.failed
	if r.err == nil {
		r.err = o.err
	}
}

func (r *result) share(server string) float64 {
	if r.ok == 0 {
		return 0
	}
	return float64(r.counts[server]) / float64(r.ok)
}

func (r *result) split(servers []*serverProc) string {
	parts := make([]string, len(servers))
	for i, s := range servers {
		parts[i] = fmt.Sprintf("%s %.2f%% (%d)", s.spec.Name, 100*r.share(s.spec.Name), r.counts[s.spec.Name])
	}
	return strings.Join(parts, ", ")
}

// call makes one call and records its outcome in r.
func call(c *core.Client, seq int, r *result) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var resp WhoResp
	err := c.Call(ctx, "Echo.Who", &WhoReq{Seq: seq}, &resp)
	if err == nil && resp.Seq != seq {
		err = fmt.Errorf("call %d answered as %d", seq, resp.Seq)
	}
	if err != nil {
		r.failed++
		if r.err == nil {
			r.err = err
		}
		return
	}
	r.ok++
	r.counts[resp.Server]++
}

// burst makes n calls from workers goroutines.
func burst(c *core.Client, n, workers int) *result {
	var next atomic.Int64
	total := &result{counts: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &result{counts: map[string]int{}}
			for {
				i := next.Add(1)
				if i > int64(n) {
					break
				}
				call(c, int(i), r)
			}
			mu.Lock()
			total.add(r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return total
}

// load calls continuously from workers goroutines until finish.
type load struct {
	seq   atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	total *result
}

func startLoad(c *core.Client, workers int) *load {
	l := &load{stop: make(chan struct{}), total: &result{counts: map[string]int{}}}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			r := &result{counts: map[string]int{}}
			defer func() {
				l.mu.Lock()
				l.total.add(r)
				l.mu.Unlock()
			}()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				call(c, int(l.seq.Add(1)), r)
			}
		}()
	}
	return l
}

func (l *load) finish() *result {
	close(l.stop)
	l.wg.Wait()
	return l.total
}
