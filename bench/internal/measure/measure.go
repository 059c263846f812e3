// Package measure holds what the benchmark records: per-process CPU,
// allocation and memory snapshots, latency histograms, and the result
// of one client run.
package measure

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// ProcStats is a snapshot of one process.
type ProcStats struct {
	// CPUNanos is user+system CPU time of the whole process (getrusage).
	CPUNanos int64 `json:"cpu_ns"`
	// Mallocs is runtime.MemStats.Mallocs: heap objects allocated so far.
	Mallocs uint64 `json:"mallocs"`
	// RSS and HWM are VmRSS and VmHWM (peak) from /proc, in bytes.
	RSS int64 `json:"rss"`
	HWM int64 `json:"hwm"`
	// Goroutines and HeapInuse describe the Go runtime.
	Goroutines int    `json:"goroutines"`
	HeapInuse  uint64 `json:"heap_inuse"`
	// SyscR and SyscW count read and write system calls (/proc/self/io):
	// fewer writes per call means better batching.
	SyscR int64 `json:"syscr"`
	SyscW int64 `json:"syscw"`
}

// Snapshot measures the calling process. It reads MemStats, which stops
// the world briefly: call it at phase boundaries, never per call.
func Snapshot() ProcStats {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, hwm, _ := ReadRSS(os.Getpid())
	r, w := readSyscalls()
	return ProcStats{
		SyscR:      r,
		SyscW:      w,
		CPUNanos:   ru.Utime.Nano() + ru.Stime.Nano(),
		Mallocs:    ms.Mallocs,
		RSS:        rss,
		HWM:        hwm,
		Goroutines: runtime.NumGoroutine(),
		HeapInuse:  ms.HeapInuse,
	}
}

// ReadRSS returns VmRSS and VmHWM of process pid in bytes.
func ReadRSS(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst = &rss
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst = &hwm
		default:
			continue
		}
		f := bytes.Fields(line)
		if len(f) >= 2 {
			kb, _ := strconv.ParseInt(string(f[1]), 10, 64)
			*dst = kb << 10
		}
	}
	return rss, hwm, sc.Err()
}

// readSyscalls returns the read and write system call counts of this
// process from /proc/self/io (zeros where unavailable).
func readSyscalls() (r, w int64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseInt(string(f[1]), 10, 64)
		switch string(f[0]) {
		case "syscr:":
			r = v
		case "syscw:":
			w = v
		}
	}
	return r, w
}

// Recorder collects latencies from many goroutines into a few sharded
// HDR histograms (one histogram per caller would cost ~100 KiB each and
// distort the client's RSS at 1,000 callers).
type Recorder struct {
	shards [16]shard
}

type shard struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
	_  [40]byte // keep shards on separate cache lines
}

// Latencies are recorded in nanoseconds from 1 µs to 60 s, 3 significant
// digits.
const (
	minLatency = int64(time.Microsecond)
	maxLatency = int64(60 * time.Second)
)

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	r := &Recorder{}
	for i := range r.shards {
		r.shards[i].h = hdrhistogram.New(minLatency, maxLatency, 3)
	}
	return r
}

// Record adds one latency observed by caller worker.
func (r *Recorder) Record(worker int, d time.Duration) {
	v := int64(d)
	if v < minLatency {
		v = minLatency
	} else if v > maxLatency {
		v = maxLatency
	}
	s := &r.shards[worker%len(r.shards)]
	s.mu.Lock()
	_ = s.h.RecordValue(v)
	s.mu.Unlock()
}

// Merged returns one histogram of everything recorded.
func (r *Recorder) Merged() *hdrhistogram.Histogram {
	out := hdrhistogram.New(minLatency, maxLatency, 3)
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		out.Merge(s.h)
		s.mu.Unlock()
	}
	return out
}

// Result is what one client run reports (JSON on its stdout).
type Result struct {
	System   string  `json:"system"`
	Workload string  `json:"workload"`
	Payload  int     `json:"payload"`
	Conc     int     `json:"conc"`
	Seconds  float64 `json:"seconds"`
	Calls    int64   `json:"calls"`
	Errors   int64   `json:"errors"`
	FirstErr string  `json:"first_error,omitempty"`
	QPS      float64 `json:"qps"`
	// Latency percentiles in microseconds.
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`
	// CPU time per call on each side, µs.
	CPUClient float64 `json:"cpu_client_us"`
	CPUServer float64 `json:"cpu_server_us"`
	// Heap allocations per call on each side.
	AllocsClient float64 `json:"allocs_client"`
	AllocsServer float64 `json:"allocs_server"`
	// Resident memory at the end of the run, bytes.
	RSSClient int64 `json:"rss_client"`
	RSSServer int64 `json:"rss_server"`
	// Write system calls per call on each side.
	WritesClient float64 `json:"writes_client"`
	WritesServer float64 `json:"writes_server"`
}

// Fill sets the latency fields from h.
func (r *Result) Fill(h *hdrhistogram.Histogram) {
	us := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1e3 }
	r.P50, r.P90, r.P99, r.P999 = us(50), us(90), us(99), us(99.9)
	r.Max = float64(h.Max()) / 1e3
}

// Costs sets the per-call CPU and allocation fields from snapshots taken
// at the start and end of the measured window.
func (r *Result) Costs(cli0, cli1, srv0, srv1 ProcStats) {
	if r.Calls == 0 {
		return
	}
	n := float64(r.Calls)
	r.CPUClient = float64(cli1.CPUNanos-cli0.CPUNanos) / 1e3 / n
	r.CPUServer = float64(srv1.CPUNanos-srv0.CPUNanos) / 1e3 / n
	r.AllocsClient = float64(cli1.Mallocs-cli0.Mallocs) / n
	r.AllocsServer = float64(srv1.Mallocs-srv0.Mallocs) / n
	r.WritesClient = float64(cli1.SyscW-cli0.SyscW) / n
	r.WritesServer = float64(srv1.SyscW-srv0.SyscW) / n
	r.RSSClient = cli1.RSS
	r.RSSServer = srv1.RSS
}
