// Package consistenthash is Kite's consistent-hashing balancer (catalog
// name "consistent_hash"): calls that carry the same affinity key
// (PickInfo.Key, set by the caller with spi.WithAffinityKey) go to the
// same instance for as long as it is there, so per-key caches and
// session state on the servers stay warm.
//
// Each instance owns virtual nodes on a 64-bit hash ring, `replicas` of
// them for an instance of average weight and proportionally more or fewer
// for heavier or lighter ones, so its share of the key space follows its
// weight. A key belongs to the first virtual node at or after its hash.
// The virtual nodes of an instance are derived from its address alone, so
// when an instance joins or leaves only the keys on its own arcs move —
// about 1/n of them — and every other key keeps its instance.
//
// Hashing is FNV-1a followed by a 64-bit finaliser (from SplitMix64), which
// spreads the short, similar strings that addresses and keys tend to be;
// a pick hashes the key without allocating and binary-searches the ring.
// Calls without a key (neither PickInfo.Key nor spi.AffinityKey(ctx)) go
// to a random virtual node, which is weighted random balancing.
//
// PickInfo.Exclude (instances a retry already tried) is honoured by
// walking clockwise to the next virtual node of an allowed instance, so a
// key's retries go to the same second choice every time.
//
// The package registers itself in spi.Default from init; import it for its
// side effect, or build a balancer directly with New.
package consistenthash
