package measure

import (
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRecorderMergesShards(t *testing.T) {
	r := NewRecorder()
	var wg sync.WaitGroup
	for w := 0; w < 40; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= 100; i++ {
				r.Record(w, time.Duration(i)*time.Millisecond)
			}
		}()
	}
	wg.Wait()
	h := r.Merged()
	if h.TotalCount() != 4000 {
		t.Fatalf("count = %d, want 4000", h.TotalCount())
	}
	var res Result
	res.Fill(h)
	// 1..100 ms uniformly: p50 ≈ 50 ms, p99 ≈ 99 ms (3 significant digits).
	if res.P50 < 49_000 || res.P50 > 51_000 || res.P99 < 98_000 || res.P99 > 100_100 {
		t.Fatalf("percentiles p50=%v p99=%v µs", res.P50, res.P99)
	}
	r.Record(0, -time.Second) // clamped, not dropped
	r.Record(0, time.Hour)
	if r.Merged().TotalCount() != 4002 {
		t.Fatal("out-of-range values were dropped")
	}
}

func TestSnapshotSeesThisProcess(t *testing.T) {
	a := Snapshot()
	sink := make([][]byte, 0, 1000)
	for i := 0; i < 1000; i++ {
		sink = append(sink, make([]byte, 64))
	}
	deadline := time.Now().Add(20 * time.Millisecond)
	for time.Now().Before(deadline) { // burn some CPU
	}
	b := Snapshot()
	if b.Mallocs-a.Mallocs < 1000 || len(sink) != 1000 {
		t.Fatalf("mallocs went from %d to %d", a.Mallocs, b.Mallocs)
	}
	if b.CPUNanos <= a.CPUNanos {
		t.Fatalf("CPU time did not advance: %d → %d", a.CPUNanos, b.CPUNanos)
	}
	if b.RSS <= 0 || b.HWM < b.RSS || b.Goroutines < 1 {
		t.Fatalf("snapshot %+v", b)
	}
	rss, _, err := ReadRSS(os.Getpid())
	if err != nil || rss <= 0 {
		t.Fatalf("ReadRSS = %d, %v", rss, err)
	}
	var res Result
	res.Calls = 10
	res.Costs(a, b, a, b)
	if res.CPUClient <= 0 || res.AllocsServer < 100 {
		t.Fatalf("costs %+v", res)
	}
}
