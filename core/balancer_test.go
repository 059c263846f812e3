package core

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/kiterpc/kite/spi"
)

// TestDefaultBalancerWithoutPlugin: a client whose catalog has no
// "weighted" balancer still gets the default of core/defaults, core's own
// smooth weighted round-robin.
func TestDefaultBalancerWithoutPlugin(t *testing.T) {
	c, err := NewClient(ClientOptions{Targets: []string{"127.0.0.1:1"}, Catalog: testCatalog(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := c.Options().Balancer
	if _, ok := b.(weightedRR); !ok || b.Name() != "weighted" {
		t.Fatalf("default balancer without the plugin = %T %q, want core's weighted", b, b.Name())
	}
}

func pickN(t *testing.T, p spi.Picker, n int, exclude ...string) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		r, err := p.Pick(context.Background(), spi.PickInfo{Exclude: exclude})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r.Instance.Addr
	}
	return out
}

func TestWeightedRR(t *testing.T) {
	ins := []spi.Instance{{Addr: "a", Weight: 100}, {Addr: "b", Weight: 200}, {Addr: "c", Weight: 700}}
	p := weightedRR{}.Build(ins)

	// Two periods (1+2+7 after dividing by the gcd): exact shares, and
	// smooth: the heavy instance never more than 3 times in a row.
	picks := pickN(t, p, 20)
	count := map[string]int{}
	run, longest := 0, 0
	for i, a := range picks {
		count[a]++
		if i > 0 && a == picks[i-1] {
			run++
		} else {
			run = 1
		}
		longest = max(longest, run)
	}
	if count["a"] != 2 || count["b"] != 4 || count["c"] != 14 {
		t.Errorf("picks over two periods: %v, want a:2 b:4 c:14 (%v)", count, picks)
	}
	if longest > 3 {
		t.Errorf("%d picks of one instance in a row: %v", longest, picks)
	}

	// Excluded instances are walked past.
	for _, a := range pickN(t, p, 30, "c") {
		if a == "c" {
			t.Fatal("picked an excluded instance")
		}
	}
	// All excluded: the scheduled one is still returned.
	if got := pickN(t, p, 1, "a", "b", "c"); got[0] == "" {
		t.Fatal("no instance when every one is excluded")
	}

	// Equal weights (and no weight at all) are plain rotation.
	eq := weightedRR{}.Build([]spi.Instance{{Addr: "x"}, {Addr: "y", Weight: 100}, {Addr: "z"}})
	got := pickN(t, eq, 6)
	for i := 3; i < 6; i++ {
		if got[i] != got[i-3] || got[i] == got[i-1] {
			t.Fatalf("equal weights do not rotate: %v", got)
		}
	}

	if _, err := (weightedRR{}).Build(nil).Pick(context.Background(), spi.PickInfo{}); !errors.Is(err, spi.ErrNoInstance) {
		t.Errorf("empty: %v, want ErrNoInstance", err)
	}
}

// TestWeightedRRConcurrent: picks from many goroutines keep the shares
// (the counter is the only shared state).
func TestWeightedRRConcurrent(t *testing.T) {
	p := weightedRR{}.Build([]spi.Instance{{Addr: "a", Weight: 1}, {Addr: "b", Weight: 3}})
	var mu sync.Mutex
	count := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := map[string]int{}
			for range 1000 {
				r, _ := p.Pick(context.Background(), spi.PickInfo{})
				local[r.Instance.Addr]++
			}
			mu.Lock()
			for k, v := range local {
				count[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if count["a"] != 2000 || count["b"] != 6000 {
		t.Errorf("8000 picks at 1:3 = %v, want a:2000 b:6000", count)
	}
}
