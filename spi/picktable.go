package spi

// PickTable is a balancer's picking decision written down as data. A
// balancer served out of process is asked for a table once per change of
// the instance list, and picks are then made in the caller's process from
// the table without a lock, so no pick ever leaves the process.
type PickTable struct {
	// Schedule is a cyclic sequence of indexes into the instance list;
	// successive picks walk it. A smooth weighted round-robin over weights
	// 3:1 could be [0, 0, 1, 0]. Used for calls without an affinity key.
	Schedule []int
	// Ring is a consistent-hash ring sorted by Hash: a call with affinity
	// key k takes the first point whose Hash is >= HashFunc(k), wrapping.
	Ring []RingPoint
	// HashFunc names the hash of Ring's points: "fnv1a64" (the default
	// when empty), "fnv1a64-splitmix64" (FNV-1a 64 followed by
	// SplitMix64's finaliser) or "crc32" (IEEE, zero-extended to 64 bits).
	HashFunc string
}

// RingPoint is one point of a consistent-hash ring.
type RingPoint struct {
	Hash  uint64
	Index int
}

// TableBalancer is implemented by a balancer that can express its picking
// as a PickTable. The plugin bridge uses it to serve the balancer out of
// process; balancers without it are sampled through their Picker.
type TableBalancer interface {
	Table(instances []Instance) PickTable
}
