// Command kite-soak runs Kite under load with faults on a schedule and
// reports whether every call was accounted for.
//
// It starts three servers (in process), each behind its own fault proxy
// (internal/faultproxy), and a client balancing over the proxies with
// heartbeats, retries of the idempotent method, breakers and reconnect
// backoff. Workers place unary calls and short streams, each with a
// deadline; every period one fault hits one server: a one-off cut, a
// delay, a black hole, a refusal, a corrupted byte, a crash restart or a
// graceful restart. A watchdog counts as LOST any call that has not
// returned — result or error — within its deadline plus a grace period.
//
// The report gives calls made, OK, errors by code (with a sample message),
// wrong answers, lost calls, retries and ejections, the faults injected,
// and goroutines, RSS and heap in use, sampled every 5 s (each sample the
// median of five reads, with goroutines counted by the function that
// started them). Flatness compares the average of the minute before the
// mark (minute 2) with the average of the last minute: these gauges move
// with the load and the fault in progress (calls in flight, handler
// goroutines parked for reuse, connections being re-established), so
// single moments are reported too, with the range and a least-squares
// trend from the mark on, but a leak shows as drift between windows and
// a steady slope.
//
//	go run ./cmd/kite-soak -duration 10m -json soak.json
//	SOAK=60s make soak
//
// Beside the load, a hostile client (hostile.go; -hostile-every, default
// 10 s) attacks one server at a time from 127.0.0.2: 200 idle streams
// that the server's stream idle timeout must end, 8 zstd decompression
// bombs that must all be answered, and a flow-control window overrun that
// must be told with a StreamEnd.
//
// The exit status is non-zero when a call was lost or answered wrongly,
// when a hostile client was not held (and, with -strict, when goroutines
// or RSS drifted beyond 10%).
package main
