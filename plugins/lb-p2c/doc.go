// Package p2c is Kite's least-loaded balancer (catalog name "p2c"): the
// "power of two choices" rule. Each pick draws two distinct instances at
// random and takes the one with fewer calls in flight relative to its
// weight; when those are equal, the one with the lower EWMA latency.
//
// Looking at two random instances rather than all of them costs O(1),
// needs no global view and no lock, and (Mitzenmacher, 2001) already
// brings the maximum load down exponentially compared with one random
// choice, while avoiding the herd behaviour of "always the least loaded",
// where every client piles onto the same instance between updates.
//
// Load comes from the calls themselves: Pick increments the chosen
// instance's in-flight counter and returns a Done that decrements it and
// folds the call's duration into the instance's latency average (errors
// that point at the instance — Unavailable, DeadlineExceeded,
// ResourceExhausted, Internal, Unknown, DataLoss — count as at least
// failure_penalty, so a server that fails fast does not look fast).
// Counters are kept by the balancer, keyed by address, so they survive
// the Builds that every registry update causes; calls picked from an old
// picker finish against the same counters.
//
// PickInfo.Exclude (instances a retry already tried) is honoured by
// taking the other candidate, or the first allowed instance after a
// random position when both are excluded.
//
// The package registers itself in spi.Default from init; import it for its
// side effect, or build a balancer directly with New.
package p2c
