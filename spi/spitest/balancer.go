package spitest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kiterpc/kite/spi"
)

// TestBalancer runs the conformance suite for spi.Balancer against b. Any
// balancer, compiled in or reached through an out-of-process bridge, must
// pass it. The suite calls b.Build many times from one goroutine at a
// time (as a client's watch loop does) while pickers it built earlier are
// still in use, so balancers that keep state across Builds are exercised
// the way a client uses them.
//
// The contract checked, beyond the interface's comments:
//   - A picker built from no instances (nil or empty) returns an error
//     matching spi.ErrNoInstance (errors.Is), also with Exclude and Key set.
//   - A picker over one instance always picks it, even when it is excluded.
//   - Every instance of a list is eventually picked, with and without an
//     affinity key, whatever the weights.
//   - PickInfo.Exclude is honoured whenever an instance outside it exists;
//     when every instance is excluded the picker still picks one (a retry
//     to an already-tried instance beats failing the call).
//   - The picked Instance is one of the built instances, every field intact.
//   - Pickers are safe for concurrent use, Done (when not nil) may be
//     called from any goroutine, also after later Builds replaced the
//     picker; run the suite with -race.
//   - Build neither modifies the caller's slice nor keeps it: changing the
//     slice after Build does not change what the picker returns.
func TestBalancer(t *testing.T, b spi.Balancer) {
	t.Helper()
	if b == nil {
		t.Fatal("spitest: TestBalancer needs a balancer, got nil")
	}
	if b.Name() == "" {
		t.Error("Name() is empty; it must be the catalog name")
	}
	t.Run("Empty", func(t *testing.T) { testBalancerEmpty(t, b) })
	t.Run("Single", func(t *testing.T) { testBalancerSingle(t, b) })
	t.Run("EveryInstancePicked", func(t *testing.T) { testBalancerCoverage(t, b) })
	t.Run("Exclude", func(t *testing.T) { testBalancerExclude(t, b) })
	t.Run("Concurrent", func(t *testing.T) { testBalancerConcurrent(t, b) })
	t.Run("BuildCopiesInstances", func(t *testing.T) { testBalancerCopies(t, b) })
	t.Run("DoneAnyGoroutine", func(t *testing.T) { testBalancerDone(t, b) })
}

// balancerInstances returns n instances of a test service with distinct
// addresses, varied weights and every field set, so a picker that drops
// a field is caught.
func balancerInstances(n int) []spi.Instance {
	out := make([]spi.Instance, n)
	for i := range out {
		out[i] = spi.Instance{
			Service:  "spitest.balancer",
			Addr:     "127.0.0.1:" + strconv.Itoa(20000+i),
			Weight:   []int{0, 1, 50, 100, 300}[i%5],
			Version:  "v" + strconv.Itoa(i%3),
			Zone:     "zone-" + strconv.Itoa(i%2),
			Tags:     []string{"t" + strconv.Itoa(i)},
			Metadata: map[string]string{"i": strconv.Itoa(i)},
		}
	}
	return out
}

// cloneInstances deep-copies ins, so the suite keeps a reference list
// that the code under test cannot reach.
func cloneInstances(ins []spi.Instance) []spi.Instance {
	out := make([]spi.Instance, len(ins))
	for i, in := range ins {
		in.Tags = slices.Clone(in.Tags)
		in.Metadata = maps.Clone(in.Metadata)
		out[i] = in
	}
	return out
}

// pickInfo varies the affinity key so hash-based pickers spread too;
// every other pick carries no key to exercise their fallback.
func pickInfo(i int, exclude []string) spi.PickInfo {
	info := spi.PickInfo{Method: "Test.Method", Exclude: exclude}
	if i%2 == 1 {
		info.Key = "key-" + strconv.Itoa(i)
	}
	return info
}

// mustPick picks once, fails the test on error, checks the result is one
// of want (all fields equal) and finishes the call through Done.
func mustPick(t *testing.T, p spi.Picker, info spi.PickInfo, want map[string]spi.Instance) spi.Instance {
	t.Helper()
	res, err := p.Pick(context.Background(), info)
	if err != nil {
		t.Fatalf("Pick(%+v): %v", info, err)
	}
	w, ok := want[res.Instance.Addr]
	if !ok {
		t.Fatalf("Pick returned %v, which was not in the list built", res.Instance)
	}
	if !reflect.DeepEqual(res.Instance, w) {
		t.Fatalf("Pick returned %#v, want the built instance %#v intact", res.Instance, w)
	}
	if res.Done != nil {
		res.Done(spi.DoneInfo{Duration: time.Millisecond, Sent: true})
	}
	return res.Instance
}

func byAddr(ins []spi.Instance) map[string]spi.Instance {
	m := make(map[string]spi.Instance, len(ins))
	for _, in := range ins {
		m[in.Addr] = in
	}
	return m
}

func testBalancerEmpty(t *testing.T, b spi.Balancer) {
	for _, ins := range [][]spi.Instance{nil, {}} {
		p := b.Build(ins)
		if p == nil {
			t.Fatalf("Build(%#v) returned a nil picker; it must return one that fails with ErrNoInstance", ins)
		}
		for i, info := range []spi.PickInfo{
			{Method: "Test.Method"},
			{Method: "Test.Method", Key: "k"},
			{Method: "Test.Method", Exclude: []string{"127.0.0.1:1"}},
		} {
			res, err := p.Pick(context.Background(), info)
			if !errors.Is(err, spi.ErrNoInstance) {
				t.Fatalf("pick %d on an empty list: got (%v, %v), want an error matching spi.ErrNoInstance", i, res.Instance, err)
			}
			if spi.CodeOf(err) != spi.Unavailable {
				t.Fatalf("pick on an empty list: code %v, want Unavailable", spi.CodeOf(err))
			}
		}
	}
}

func testBalancerSingle(t *testing.T, b spi.Balancer) {
	ins := balancerInstances(1)
	want := byAddr(cloneInstances(ins))
	p := b.Build(ins)
	for i := range 200 {
		var exclude []string
		if i%3 == 0 {
			exclude = []string{ins[0].Addr}
		}
		got := mustPick(t, p, pickInfo(i, exclude), want)
		if got.Addr != ins[0].Addr {
			t.Fatalf("single instance: picked %s", got.Addr)
		}
	}
}

func testBalancerCoverage(t *testing.T, b spi.Balancer) {
	// Weights span 1..300, so a weighted picker reaches the lightest
	// instance with probability about 1/750 per pick: 20,000 picks miss
	// it with odds far below one in a billion.
	ins := balancerInstances(7)
	want := byAddr(cloneInstances(ins))
	p := b.Build(ins)
	for _, withKey := range []bool{false, true} {
		seen := make(map[string]int)
		for i := 0; i < 20000 && len(seen) < len(ins); i++ {
			info := spi.PickInfo{Method: "Test.Method"}
			if withKey {
				info.Key = "key-" + strconv.Itoa(i)
			}
			seen[mustPick(t, p, info, want).Addr]++
		}
		if len(seen) != len(ins) {
			t.Fatalf("after 20000 picks (affinity keys: %v) only %d of %d instances were picked: %v", withKey, len(seen), len(ins), seen)
		}
	}
}

func testBalancerExclude(t *testing.T, b spi.Balancer) {
	ins := balancerInstances(5)
	want := byAddr(cloneInstances(ins))
	p := b.Build(ins)
	addrs := make([]string, len(ins))
	for i, in := range ins {
		addrs[i] = in.Addr
	}
	// Exclude all but one: the remaining one must be picked every time.
	for keep := range ins {
		exclude := slices.Concat(addrs[:keep], addrs[keep+1:])
		for i := range 50 {
			got := mustPick(t, p, pickInfo(i, exclude), want)
			if got.Addr != addrs[keep] {
				t.Fatalf("Exclude=%v: picked excluded %s although %s was available", exclude, got.Addr, addrs[keep])
			}
		}
	}
	// Exclude one: never picked while others exist.
	for skip := range ins {
		exclude := []string{addrs[skip]}
		for i := range 100 {
			if got := mustPick(t, p, pickInfo(i, exclude), want); got.Addr == addrs[skip] {
				t.Fatalf("Exclude=%v: picked the excluded instance", exclude)
			}
		}
	}
	// Unknown addresses in Exclude are harmless.
	for i := range 50 {
		mustPick(t, p, pickInfo(i, []string{"127.0.0.1:1", "unix:///nowhere"}), want)
	}
	// Everything excluded: the picker still answers with a listed instance.
	for i := range 50 {
		mustPick(t, p, pickInfo(i, addrs), want)
	}
}

func testBalancerConcurrent(t *testing.T, b spi.Balancer) {
	const (
		goroutines = 16
		picks      = 500
	)
	lists := [][]spi.Instance{balancerInstances(3), balancerInstances(8), balancerInstances(1), balancerInstances(5)}
	want := byAddr(cloneInstances(balancerInstances(8)))

	var cur sync.Map // "p" → spi.Picker, replaced by the builder goroutine
	cur.Store("p", b.Build(lists[0]))

	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		failure error
	)
	fail := func(err error) { errOnce.Do(func() { failure = err }) }
	stop := make(chan struct{})
	builderDone := make(chan struct{})
	// One goroutine rebuilds continuously, as a watch loop would.
	go func() {
		defer close(builderDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cur.Store("p", b.Build(lists[i%len(lists)]))
		}
	}()
	dones := make(chan func(spi.DoneInfo), goroutines*picks)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range picks {
				v, _ := cur.Load("p")
				p := v.(spi.Picker)
				info := pickInfo(g*picks+i, nil)
				if i%7 == 0 {
					info.Exclude = []string{want["127.0.0.1:20000"].Addr}
				}
				res, err := p.Pick(context.Background(), info)
				if err != nil {
					fail(fmt.Errorf("concurrent Pick: %v", err))
					return
				}
				if w, ok := want[res.Instance.Addr]; !ok || !reflect.DeepEqual(w, res.Instance) {
					fail(fmt.Errorf("concurrent Pick returned %#v, not a built instance", res.Instance))
					return
				}
				if res.Done == nil {
					continue
				}
				// Finish half the calls here and half elsewhere.
				if i%2 == 0 {
					res.Done(spi.DoneInfo{Duration: time.Duration(i) * time.Microsecond, Sent: true})
				} else {
					dones <- res.Done
				}
			}
		}()
	}
	// Finish the handed-off calls from other goroutines while picks go on.
	var dwg sync.WaitGroup
	for range 4 {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			for done := range dones {
				done(spi.DoneInfo{Err: spi.ErrUnavailable, Duration: time.Millisecond, Sent: false})
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-builderDone
	close(dones)
	dwg.Wait()
	if failure != nil {
		t.Fatal(failure)
	}
}

func testBalancerCopies(t *testing.T, b spi.Balancer) {
	ins := balancerInstances(4)
	orig := cloneInstances(ins)
	want := byAddr(orig)
	p := b.Build(ins)
	if !reflect.DeepEqual(ins, orig) {
		t.Fatalf("Build modified the caller's slice:\n got %#v\nwant %#v", ins, orig)
	}
	// Reuse the caller's array for something else, as a registry client
	// decoding the next snapshot into the same buffer would.
	for i := range ins {
		ins[i].Addr = "mutated:" + strconv.Itoa(i)
		ins[i].Weight = 1000
		ins[i].Service = "mutated"
	}
	_ = append(ins[:0], spi.Instance{Service: "mutated", Addr: "mutated:99"})
	seen := make(map[string]bool)
	for i := range 4000 {
		seen[mustPick(t, p, pickInfo(i, nil), want).Addr] = true
	}
	if len(seen) != len(orig) {
		t.Fatalf("after mutating the built slice, picks reached %d of %d instances: %v", len(seen), len(orig), seen)
	}
}

func testBalancerDone(t *testing.T, b spi.Balancer) {
	ins := balancerInstances(3)
	want := byAddr(cloneInstances(ins))
	p := b.Build(ins)
	var results []spi.PickResult
	for i := range 60 {
		res, err := p.Pick(context.Background(), pickInfo(i, nil))
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		if _, ok := want[res.Instance.Addr]; !ok {
			t.Fatalf("Pick returned %v, not a built instance", res.Instance)
		}
		results = append(results, res)
	}
	// A rebuild while the calls are in flight: their Done must still be
	// safe to call, on the old picker's behalf.
	b.Build(ins[:2])
	infos := []spi.DoneInfo{
		{Duration: time.Millisecond, Sent: true},
		{Err: spi.ErrUnavailable, Sent: false},
		{Err: spi.ErrDeadlineExceeded, Duration: time.Second, Sent: true},
		{Err: errors.New("local failure")},
	}
	var wg sync.WaitGroup
	for i, res := range results {
		if res.Done == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Done(infos[i%len(infos)])
		}()
	}
	wg.Wait()
	// The balancer still works after all that.
	p = b.Build(ins)
	for i := range 30 {
		mustPick(t, p, pickInfo(i, nil), want)
	}
}
