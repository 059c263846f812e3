package core

import (
	"sync"
	"testing"
	"time"
)

// TestWorkerPool checks the pool's life cycle: calls run on reused
// workers, workers parked through two sweeps retire, stop ends the parked
// ones, and a call submitted after stop still runs.
func TestWorkerPool(t *testing.T) {
	var mu sync.Mutex
	ran := map[int]bool{}
	release := make(chan struct{})
	var started, done sync.WaitGroup
	p := newWorkerPool(func(i int) {
		defer done.Done()
		started.Done()
		if i < 8 {
			<-release // the first eight run at once: eight workers
		}
		mu.Lock()
		ran[i] = true
		mu.Unlock()
	})
	t.Cleanup(p.stop)

	const n = 8
	started.Add(n)
	done.Add(n)
	for i := range n {
		p.submit(i)
	}
	started.Wait()
	if got := p.parked(); got != 0 {
		t.Fatalf("%d workers parked while all %d are busy", got, n)
	}
	close(release)
	done.Wait()
	waitFor(t, func() bool { return p.parked() == n })

	// A parked worker takes the next call: none is started.
	started.Add(1)
	done.Add(1)
	p.submit(100)
	done.Wait()
	waitFor(t, func() bool { return p.parked() == n })

	// The timer's sweep marks the parked workers, the next retires them.
	p.sweep()
	if got := p.parked(); got != n {
		t.Fatalf("first sweep retired workers: %d parked, want %d", got, n)
	}
	p.sweep()
	if got := p.parked(); got != 0 {
		t.Fatalf("second sweep left %d parked", got)
	}

	started.Add(1)
	done.Add(1)
	p.submit(101)
	done.Wait()
	waitFor(t, func() bool { return p.parked() == 1 })
	p.stop()
	if got := p.parked(); got != 0 {
		t.Fatalf("stop left %d parked", got)
	}
	started.Add(1)
	done.Add(1)
	p.submit(102) // after stop: runs, then its worker exits
	done.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, i := range []int{0, 7, 100, 101, 102} {
		if !ran[i] {
			t.Errorf("call %d did not run", i)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
