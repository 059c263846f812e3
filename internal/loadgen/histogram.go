package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: 2^subBits buckets for values
// below 2^subBits ns, then 2^(subBits-1) buckets per power of two.
const subBits = 7

const numBuckets = (64-subBits)<<(subBits-1) + 1<<subBits

// Histogram records durations with bounded relative error. The zero value
// is ready; it is not safe for concurrent use (keep one per goroutine and
// Merge).
type Histogram struct {
	counts   [numBuckets]uint64
	n        uint64
	sum      float64
	min, max time.Duration
}

func bucket(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	shift := bits.Len64(v) - subBits
	return shift<<(subBits-1) + int(v>>shift)
}

// bucketValue is the midpoint of bucket i.
func bucketValue(i int) time.Duration {
	if i < 1<<subBits {
		return time.Duration(i)
	}
	shift := i>>(subBits-1) - 1
	top := uint64(i - shift<<(subBits-1))
	lo := top << shift
	return time.Duration(lo + (uint64(1)<<shift)/2)
}

// Record adds one duration (negative counts as zero).
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucket(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += float64(d)
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Min, Max and Mean are exact.
func (h *Histogram) Min() time.Duration { return h.min }

// Max returns the largest sample.
func (h *Histogram) Max() time.Duration { return h.max }

// Mean returns the average sample.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the q-quantile (0 < q ≤ 1), e.g. 0.99 for p99: the
// smallest bucket value with at least q of the samples at or below it,
// clamped to [Min, Max].
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(max(bucketValue(i), h.min), h.max)
		}
	}
	return h.max
}
