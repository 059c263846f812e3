// Package ratelimitfilter is the "ratelimit" filter: token buckets that
// refuse calls beyond a rate with ResourceExhausted, before the handler (or,
// on a client, before the network) does any work.
//
// A bucket holds up to burst tokens and refills at rate tokens per second;
// each call takes one. Buckets are kept per the per attribute: one for the
// whole filter ("global"), one per method ("method"), or one per caller
// ("peer": the caller's host on a server — the port is ephemeral and would
// give every connection a fresh allowance). A refused call's error says when
// a token will be there ("retry after 40ms"), and on a server the same hint
// goes back in the "retry-after" trailer.
//
// Each bucket is one int64 updated with compare-and-swap: the filter keeps
// the bucket's theoretical arrival time (the generic cell rate algorithm,
// which is a token bucket stated as a deadline), so taking a token is a
// load, a little arithmetic and a CAS — no lock on the hot path for global
// limits and a read-locked shard lookup for keyed ones.
//
// Memory is bounded for keyed buckets: at most max_buckets are kept, spread
// over sharded maps. When a shard is full, buckets that have refilled
// completely are dropped first — they are indistinguishable from a fresh
// bucket, so dropping them loses nothing. Only when every bucket in the shard
// is still refilling is the one closest to full dropped, which can let that
// caller in a little early: an attacker rotating addresses faster than the
// table holds them is a job for a network limit, not for this filter.
package ratelimitfilter
