package plugin

import (
	"context"
	"fmt"
	"hash/crc32"
	"slices"
	"sync/atomic"

	"github.com/kiterpc/kite/spi"
)

// maxSampledSchedule bounds the schedule sampled from a balancer that does
// not implement spi.TableBalancer.
const maxSampledSchedule = 1 << 16

// TableOf returns b's picking table over instances: b's own table when it
// implements spi.TableBalancer, otherwise a schedule sampled from its
// Picker. Sampling takes one full period of the picker (the sum of the
// instances' effective weights, which is exactly one cycle of a smooth
// weighted round-robin, capped at 65536 picks); it suits balancers whose
// picks do not depend on the call, and loses load feedback (Done) and
// key affinity, which balancers that need them express through Table.
func TableOf(ctx context.Context, b spi.Balancer, instances []spi.Instance) spi.PickTable {
	if tb, ok := b.(spi.TableBalancer); ok {
		return tb.Table(instances)
	}
	if len(instances) == 0 {
		return spi.PickTable{}
	}
	index := make(map[string]int, len(instances))
	total := 0
	for i, in := range instances {
		if _, dup := index[in.Key()]; !dup {
			index[in.Key()] = i
		}
		total += in.EffectiveWeight()
	}
	n := min(max(total, len(instances)), maxSampledSchedule)
	picker := b.Build(instances)
	sched := make([]int, 0, n)
	for range n {
		r, err := picker.Pick(ctx, spi.PickInfo{})
		if err != nil {
			break
		}
		if r.Done != nil {
			r.Done(spi.DoneInfo{Sent: true})
		}
		if i, ok := index[r.Instance.Key()]; ok {
			sched = append(sched, i)
		}
	}
	return spi.PickTable{Schedule: sched}
}

// hashFunc returns the named ring hash.
func hashFunc(name string) (func(string) uint64, error) {
	switch name {
	case "", "fnv1a64":
		return fnv1a64, nil
	case "fnv1a64-splitmix64":
		return fnv1a64SplitMix64, nil
	case "crc32":
		return func(s string) uint64 { return uint64(crc32.ChecksumIEEE([]byte(s))) }, nil
	}
	return nil, fmt.Errorf("unknown ring hash %q (want fnv1a64, fnv1a64-splitmix64 or crc32)", name)
}

// table is a validated PickTable bound to its instance list.
type table struct {
	instances []spi.Instance
	schedule  []int
	ring      []spi.RingPoint
	hash      func(string) uint64
}

func newTable(instances []spi.Instance, t spi.PickTable) (*table, error) {
	n := len(instances)
	for _, i := range t.Schedule {
		if i < 0 || i >= n {
			return nil, fmt.Errorf("schedule index %d out of range [0,%d)", i, n)
		}
	}
	for _, p := range t.Ring {
		if p.Index < 0 || p.Index >= n {
			return nil, fmt.Errorf("ring index %d out of range [0,%d)", p.Index, n)
		}
	}
	h, err := hashFunc(t.HashFunc)
	if err != nil {
		return nil, err
	}
	ring := t.Ring
	if !slices.IsSortedFunc(ring, func(a, b spi.RingPoint) int { return cmpU64(a.Hash, b.Hash) }) {
		ring = slices.Clone(ring)
		slices.SortFunc(ring, func(a, b spi.RingPoint) int { return cmpU64(a.Hash, b.Hash) })
	}
	return &table{instances: instances, schedule: t.Schedule, ring: ring, hash: h}, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TablePicker is a spi.Picker that picks from a PickTable in process,
// without a lock: successive calls walk the schedule with an atomic
// counter; calls with an affinity key go to the ring. The table can be
// swapped atomically (the bridge does so when a balancer plugin comes
// back after a crash).
type TablePicker struct {
	t    atomic.Pointer[table]
	next atomic.Uint64
}

// NewTablePicker returns a picker over instances from t. An empty table
// over a non-empty list picks round-robin.
func NewTablePicker(instances []spi.Instance, t spi.PickTable) (*TablePicker, error) {
	tb, err := newTable(instances, t)
	if err != nil {
		return nil, err
	}
	p := &TablePicker{}
	p.t.Store(tb)
	return p, nil
}

func (p *TablePicker) swap(t *table) { p.t.Store(t) }

// Pick implements spi.Picker.
func (p *TablePicker) Pick(_ context.Context, info spi.PickInfo) (spi.PickResult, error) {
	t := p.t.Load()
	n := len(t.instances)
	if n == 0 {
		return spi.PickResult{}, spi.ErrNoInstance
	}
	if info.Key != "" && len(t.ring) > 0 {
		h := t.hash(info.Key)
		start, _ := slices.BinarySearchFunc(t.ring, h, func(p spi.RingPoint, h uint64) int { return cmpU64(p.Hash, h) })
		for k := range len(t.ring) {
			in := t.instances[t.ring[(start+k)%len(t.ring)].Index]
			if !excluded(in.Addr, info.Exclude) {
				return spi.PickResult{Instance: in}, nil
			}
		}
		return spi.PickResult{Instance: t.instances[t.ring[start%len(t.ring)].Index]}, nil
	}
	c := p.next.Add(1) - 1
	if len(t.schedule) == 0 {
		for k := range uint64(n) {
			in := t.instances[(c+k)%uint64(n)]
			if !excluded(in.Addr, info.Exclude) {
				return spi.PickResult{Instance: in}, nil
			}
		}
		return spi.PickResult{Instance: t.instances[c%uint64(n)]}, nil
	}
	m := uint64(len(t.schedule))
	first := t.instances[t.schedule[c%m]]
	if len(info.Exclude) == 0 || !excluded(first.Addr, info.Exclude) {
		return spi.PickResult{Instance: first}, nil
	}
	for k := uint64(1); k < m; k++ {
		in := t.instances[t.schedule[(c+k)%m]]
		if !excluded(in.Addr, info.Exclude) {
			return spi.PickResult{Instance: in}, nil
		}
	}
	return spi.PickResult{Instance: first}, nil
}

func excluded(addr string, exclude []string) bool {
	for _, a := range exclude {
		if a == addr {
			return true
		}
	}
	return false
}

// fnv1a64 is FNV-1a over the key's bytes, written out so that hashing a
// key on the pick path does not allocate.
func fnv1a64(s string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	return h
}

// fnv1a64SplitMix64 is FNV-1a followed by SplitMix64's finaliser. FNV-1a
// alone leaves keys that differ in their last byte ("user-1", "user-2")
// about 2^40 apart, on one arc of a 2^64 ring; the finaliser spreads them.
// lb-hash (consistent_hash) places keys this way, so its ring served out
// of process picks exactly what it picks compiled in.
func fnv1a64SplitMix64(s string) uint64 {
	x := fnv1a64(s)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
