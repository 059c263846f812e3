// Package loadgen drives a call function at a fixed concurrency for a
// duration (or a number of calls) and reports throughput, latency
// percentiles and errors by status code. `kite bench` and the bench/
// module use it, so every Kite figure is measured the same way.
//
// Latencies go into a log-linear histogram (128 sub-buckets per power of
// two: at most 0.8 % relative error, ~30 KiB per worker, no allocation
// per call); each worker records into its own histogram and they are
// merged at the end, so measuring adds no shared-memory traffic to the
// calls measured. Only the call counters used for the progress line are
// shared atomics.
//
// A run stops issuing calls when the duration is over, the call budget
// is spent or ctx ends; calls already in flight complete and count. The
// reported duration is until the last of them returned.
package loadgen
