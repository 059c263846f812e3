package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/spi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHistogramBucketsRoundTrip(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, 1<<63 - 1} {
		i := bucket(v)
		require.Less(t, i, numBuckets)
		require.GreaterOrEqual(t, i, prev, "buckets never decrease with the value")
		prev = i
		mid := uint64(bucketValue(i))
		if v < 1<<subBits {
			assert.Equal(t, v, mid)
			continue
		}
		assert.Equal(t, i, bucket(mid), "midpoint of bucket %d falls in it", i)
		assert.InEpsilon(t, float64(v), float64(mid), 0.008, "v=%d", v)
	}
}

func TestHistogramQuantilesMatchExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var parts [4]Histogram
	var all []time.Duration
	for i := range 100_000 {
		// Log-normal-ish latencies from 20µs to ~50ms.
		d := time.Duration(20_000 * (1 + r.ExpFloat64()*r.ExpFloat64()*30))
		all = append(all, d)
		parts[i%4].Record(d)
	}
	var h Histogram
	for i := range parts {
		h.Merge(&parts[i])
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	require.EqualValues(t, len(all), h.Count())
	assert.Equal(t, all[0], h.Min())
	assert.Equal(t, all[len(all)-1], h.Max())
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		assert.InEpsilon(t, float64(exact), float64(h.Quantile(q)), 0.01, "q=%v", q)
	}
	assert.Equal(t, h.Max(), h.Quantile(1))
}

func TestRunRequestsErrorsAndProgress(t *testing.T) {
	var n atomic.Int64
	var mu sync.Mutex
	var snaps []Snapshot
	res, err := Run(context.Background(), Config{
		Concurrency:   8,
		Requests:      2000,
		ProgressEvery: 5 * time.Millisecond,
		Progress: func(s Snapshot) {
			mu.Lock()
			snaps = append(snaps, s)
			mu.Unlock()
		},
	}, func(ctx context.Context) error {
		i := n.Add(1)
		time.Sleep(50 * time.Microsecond) // the "call"
		switch {
		case i%10 == 0:
			return spi.Errorf(spi.Unavailable, "down")
		case i%25 == 1:
			return context.DeadlineExceeded
		}
		return nil
	})
	require.NoError(t, err)
	assert.EqualValues(t, 2000, res.Calls, "exactly the requested number of calls")
	assert.EqualValues(t, 2000, n.Load())
	assert.EqualValues(t, 200, res.Errors["Unavailable"])
	assert.EqualValues(t, 80, res.Errors["DeadlineExceeded"])
	assert.EqualValues(t, 2000-280, res.OK)
	assert.Equal(t, []string{"Unavailable", "DeadlineExceeded"}, res.ErrorClasses())
	assert.Greater(t, res.QPS, 0.0)
	assert.GreaterOrEqual(t, res.Latency.P50, 50*time.Microsecond)
	assert.LessOrEqual(t, res.Latency.P50, res.Latency.P99)
	assert.LessOrEqual(t, res.Latency.P99, res.Latency.Max)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, snaps, "progress was reported")
	for i := 1; i < len(snaps); i++ {
		assert.GreaterOrEqual(t, snaps[i].Calls, snaps[i-1].Calls)
	}
}

func TestRunDurationAndCancel(t *testing.T) {
	start := time.Now()
	res, err := Run(context.Background(), Config{Concurrency: 4, Duration: 100 * time.Millisecond},
		func(ctx context.Context) error { time.Sleep(time.Millisecond); return nil })
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	assert.Less(t, res.Elapsed, 2*time.Second)
	assert.Greater(t, res.Calls, int64(4))
	assert.Zero(t, res.ErrorCount())

	ctx, cancel := context.WithCancel(context.Background())
	var started atomic.Int64
	res, err = Run(ctx, Config{Concurrency: 2, Duration: time.Hour}, func(ctx context.Context) error {
		if started.Add(1) < 10 {
			return nil
		}
		cancel()
		<-ctx.Done()
		return ctx.Err()
	})
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, res.ErrorCount(), "calls cut short by the caller's cancel are not failures")
	assert.EqualValues(t, 9, res.Calls)

	_, err = Run(context.Background(), Config{}, func(context.Context) error { return errors.New("x") })
	assert.Error(t, err)
}
