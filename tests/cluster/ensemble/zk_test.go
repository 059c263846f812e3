package ensemble

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kiterpc/kite/internal/quorum"
	"github.com/kiterpc/kite/internal/testkit"
	zookeeper "github.com/kiterpc/kite/plugins/registry-zk"
	"github.com/kiterpc/kite/spi"
)

// zkConvergeBound is what the test asserts for the registry view to
// converge after the leader is killed: below the 10 s session timeout,
// so no session may expire for it.
const zkConvergeBound = 10 * time.Second

// TestZooKeeperLeaderKilled — issue 14 scenario 1. Three Kite servers
// register in a 3-node ensemble (each through a registry of its own, so
// a session each, spread over the members) and a client watches them
// and calls under load. The leader is SIGKILLed, and at that moment one
// server deregisters and a new one registers. Asserted: no call fails or
// is lost; the client's view converges to the new set within
// zkConvergeBound; the new server gets traffic; no session expires (the
// sessions move to the surviving members); the killed member rejoins as
// a follower when restarted. Measured: election, convergence (kill →
// client view exact), register latency, rejoin.
func TestZooKeeperLeaderKilled(t *testing.T) {
	ens := quorum.ZooKeeper(t, 3)
	root := "/kite-ensemble-" + randomSuffix()
	t.Cleanup(func() {
		if ens.WaitServing(context.Background()) == nil {
			testkit.DeleteZKTree(t, ens.Addrs()[0], root)
		}
	})
	newReg := func() *zookeeper.Registry {
		r, err := zookeeper.New(zookeeper.Config{Servers: ens.Addrs(), Root: root, SessionTimeout: "10s"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	type kite struct {
		name, addr string
		reg        *zookeeper.Registry
	}
	var regs []*zookeeper.Registry
	register := func(name string) (kite, time.Duration) {
		k := kite{name: name, addr: startKite(t, name), reg: newReg()}
		regs = append(regs, k.reg)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		began := time.Now()
		if err := k.reg.Register(ctx, spi.Instance{Service: service, Addr: k.addr}); err != nil {
			t.Errorf("registering %s: %v", name, err)
		}
		return k, time.Since(began)
	}
	var live []kite
	for i := 1; i <= 3; i++ {
		k, _ := register(fmt.Sprintf("s%d", i))
		live = append(live, k)
	}
	clientReg := newReg()
	regs = append(regs, clientReg)
	c := newClient(t, clientReg)
	addrsOf := func(ks []kite) []string {
		var out []string
		for _, k := range ks {
			out = append(out, k.addr)
		}
		return out
	}
	waitFor(t, 10*time.Second, "the client sees s1..s3", viewIs(c, addrsOf(live)...))
	l := startLoad(t, c)
	waitFor(t, 5*time.Second, "load running", func() bool { return l.snapshot().OK >= 100 })

	next := 4
	var elections, convergences, rejoins []time.Duration
	n := rounds(t, func(round int) {
		leader := ens.WaitLeader(t, 30*time.Second)
		before := l.snapshot()
		gone, added := live[0], fmt.Sprintf("s%d", next)
		next++

		killed := time.Now()
		leader.Kill()
		// While the ensemble elects: one server leaves, one arrives.
		var (
			wg       sync.WaitGroup
			newcomer kite
			regTook  time.Duration
			deregErr error
		)
		wg.Add(2)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			deregErr = gone.reg.Deregister(ctx, spi.Instance{Service: service, Addr: gone.addr})
		}()
		go func() {
			defer wg.Done()
			newcomer, regTook = register(added)
		}()
		elected := ens.WaitLeader(t, 30*time.Second)
		election := time.Since(killed)
		wg.Wait()
		if deregErr != nil {
			t.Fatalf("deregistering %s: %v", gone.name, deregErr)
		}
		if t.Failed() {
			return
		}
		live = append(live[1:], newcomer)
		waitFor(t, zkConvergeBound-time.Since(killed), "the client's view converges after the leader was killed",
			viewIs(c, addrsOf(live)...))
		converged := time.Since(killed)
		elections, convergences = append(elections, election), append(convergences, converged)
		traffic := waitFor(t, 5*time.Second, added+" gets calls", reached(l, added))

		restarted := time.Now()
		if err := leader.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := ens.WaitServing(ctx, leader)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		rejoin := time.Since(restarted)
		rejoins = append(rejoins, rejoin)
		after := l.snapshot()
		t.Logf("round %d: killed leader %s; %s leads after %v; view converged (-%s +%s) %v after the kill; "+
			"register took %v; %s got calls %v later; %s rejoined in %v; calls %d ok, %d failed, %d lost",
			round, leader.Name, elected.Name, election.Round(time.Millisecond), gone.name, added,
			converged.Round(time.Millisecond), regTook.Round(time.Millisecond), added, traffic.Round(time.Millisecond),
			leader.Name, rejoin.Round(time.Millisecond),
			after.OK-before.OK, after.Failed-before.Failed, after.Lost-before.Lost)
	})

	r := l.finish()
	t.Logf("slowest answered call %v; longest stall of the test process %v", r.Slowest.Round(time.Millisecond), r.Stall.Round(time.Millisecond))
	var expiries int64
	for _, reg := range regs {
		expiries += reg.Expiries()
	}
	t.Logf("total: scenario 1 (ZooKeeper leader killed), %d rounds: %d calls answered, %d failed, %d lost; "+
		"new leader %s; view converged %s after the kill (bound %v); killed member rejoined %s; session expiries %d",
		n, r.OK, r.Failed, r.Lost, spread(elections), spread(convergences), zkConvergeBound, spread(rejoins), expiries)
	if r.Failed != 0 || r.Lost != 0 {
		t.Errorf("calls failed or lost while the leader changed: %d failed, %d lost: %s", r.Failed, r.Lost, r.Failures)
	}
	if expiries != 0 {
		t.Errorf("%d ZooKeeper sessions expired during a leader change (session timeout 10s)", expiries)
	}
}
