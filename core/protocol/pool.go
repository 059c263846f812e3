package protocol

import "sync"

// Size-classed buffer pools. Frames larger than the largest class are
// allocated exactly and left to the garbage collector, so one huge frame
// does not pin memory in a pool.
var classes = [...]int{4 << 10, 32 << 10, 256 << 10, 1 << 20}

var pools [len(classes)]sync.Pool

func init() {
	for i := range pools {
		size := classes[i]
		pools[i].New = func() any {
			b := make([]byte, 0, size)
			return &b
		}
	}
}

func classOf(n int) int {
	for i, c := range classes {
		if n <= c {
			return i
		}
	}
	return -1
}

// getBuf returns a buffer with capacity at least n.
func getBuf(n int) *[]byte {
	if i := classOf(n); i >= 0 {
		bp := pools[i].Get().(*[]byte)
		if cap(*bp) >= n {
			return bp
		}
		pools[i].Put(bp)
	}
	b := make([]byte, 0, n)
	return &b
}

// putBuf returns a buffer to the largest pool class it fully covers.
func putBuf(bp *[]byte) {
	c := cap(*bp)
	for i := len(classes) - 1; i >= 0; i-- {
		if c >= classes[i] {
			if c > 4*classes[i] && i == len(classes)-1 {
				return // oversized: let it go
			}
			*bp = (*bp)[:0]
			pools[i].Put(bp)
			return
		}
	}
}

// GetBuffer and PutBuffer expose the pool to the runtime for scratch space
// (compression output).
func GetBuffer(n int) *[]byte { return getBuf(n) }

// PutBuffer returns a buffer obtained from GetBuffer.
func PutBuffer(bp *[]byte) { putBuf(bp) }
