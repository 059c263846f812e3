// Package faultproxy is an in-process TCP proxy for fault-injection tests.
//
// A Proxy listens on a loopback port and forwards every accepted
// connection to a target address. A Fault, set for the whole proxy or for
// one connection and changeable at any time, decides what happens to the
// bytes:
//
//   - Pass forwards them unchanged;
//   - Delay forwards every chunk after a fixed latency (throughput is kept:
//     chunks are pipelined, as on a long link), optionally varied by a
//     jitter (DelayJitter) while the bytes stay in order;
//   - Drop silently discards the bytes of one direction (or both);
//   - Cut closes both sides; while a proxy-wide Cut is set, new
//     connections are closed as soon as they are accepted (a refused
//     port, seen from a client that already resolved the address);
//   - Corrupt flips bytes: one at an offset counted from the moment the
//     fault was set, and/or each byte with a probability, in one direction;
//   - BlackHole accepts and reads but never forwards or answers: the peer
//     behind the proxy looks alive to the kernel and silent to the
//     application, like a host that vanished without a FIN (a half-open
//     connection). A connection that was black-holed stays so until it is
//     closed: the bytes it swallowed cannot be given back, so resuming it
//     would only deliver a corrupt stream.
//
// A connection-level fault overrides the proxy's for that connection until
// it is cleared. Close stops the listener and every connection and waits
// for all of the proxy's goroutines, so tests that use goleak stay clean.
//
// The proxy is for tests and soak runs on loopback; it makes no attempt to
// be fast beyond not being the bottleneck of a Kite connection.
package faultproxy
