package consistenthash

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/balancerkit"
)

// Name is the catalog name of this balancer.
const Name = "consistent_hash"

// DefaultReplicas is the number of virtual nodes of an instance of
// average weight, as in ketama.
const DefaultReplicas = 160

// maxRing caps the number of virtual nodes of a ring (24 MiB of points
// and owners); replicas are scaled down for very large services.
const maxRing = 1 << 21

// Config is the balancer's kite.hcl block.
type Config struct {
	// Replicas is the number of virtual nodes of an instance of average
	// weight. More spread keys more evenly and cost memory and Build time.
	Replicas int `json:"replicas,omitempty"`
}

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindBalancer,
		Name:    Name,
		Version: "1.0.0",
		Doc:     "consistent hashing on the affinity key (PickInfo.Key), weighted virtual nodes; random without a key",
		Schema: spi.Schema{
			{Name: "replicas", Type: spi.TypeNumber, Doc: "virtual nodes of an instance of average weight (default 160)"},
		},
		New: spi.FactoryOf(func(c Config) (*Balancer, error) {
			if c.Replicas < 0 || c.Replicas > 1<<16 {
				return nil, fmt.Errorf("replicas must be between 1 and 65536, got %d", c.Replicas)
			}
			return New(Options(c)), nil
		}),
	})
}

// Options configure a Balancer.
type Options struct {
	// Replicas is the number of virtual nodes of an instance of average
	// weight; 0 means DefaultReplicas.
	Replicas int
}

// Balancer is the consistent-hashing balancer. It holds no state between
// Builds: a ring depends only on the instances.
type Balancer struct {
	replicas int
}

// New returns a balancer with opts.
func New(opts Options) *Balancer {
	if opts.Replicas <= 0 {
		opts.Replicas = DefaultReplicas
	}
	return &Balancer{replicas: opts.Replicas}
}

// Name implements spi.Balancer.
func (*Balancer) Name() string { return Name }

// Build implements spi.Balancer.
func (b *Balancer) Build(instances []spi.Instance) spi.Picker {
	if len(instances) == 0 {
		return balancerkit.Empty
	}
	p := &picker{instances: slices.Clone(instances)}
	var sum float64
	for _, in := range instances {
		sum += float64(in.EffectiveWeight())
	}
	// Virtual nodes per instance: replicas × weight / mean weight. With
	// equal weights this is exactly replicas whatever the number of
	// instances, which is what keeps remapping minimal; with unequal
	// weights a change of the mean shifts counts by a few nodes, moving
	// only those nodes' arcs.
	perWeight := float64(b.replicas) * float64(len(instances)) / sum
	if total := float64(b.replicas) * float64(len(instances)); total > maxRing {
		perWeight *= maxRing / total
	}
	type node struct {
		point uint64
		owner int32
	}
	var nodes []node
	for i, in := range instances {
		v := max(1, int(float64(in.EffectiveWeight())*perWeight+0.5))
		h := hashString(in.Addr)
		for k := range v {
			nodes = append(nodes, node{point: mix64(h + uint64(k)*0x9e3779b97f4a7c15), owner: int32(i)})
		}
	}
	// Ties (two virtual nodes on one point) are broken by address so the
	// ring does not depend on the order of the instance list.
	slices.SortFunc(nodes, func(a, b node) int {
		if c := cmp.Compare(a.point, b.point); c != 0 {
			return c
		}
		return cmp.Compare(instances[a.owner].Addr, instances[b.owner].Addr)
	})
	p.points = make([]uint64, len(nodes))
	p.owners = make([]int32, len(nodes))
	for i, nd := range nodes {
		p.points[i] = nd.point
		p.owners[i] = nd.owner
	}
	return p
}

type picker struct {
	instances []spi.Instance
	points    []uint64 // sorted virtual node positions
	owners    []int32  // owners[i] is the instance of points[i]
}

// Pick implements spi.Picker.
func (p *picker) Pick(ctx context.Context, info spi.PickInfo) (spi.PickResult, error) {
	key := info.Key
	if key == "" {
		key = spi.AffinityKey(ctx)
	}
	var pos int
	if key == "" {
		pos = rand.IntN(len(p.points))
	} else {
		pos = p.search(mix64(hashString(key)))
	}
	i := p.owners[pos]
	if len(info.Exclude) != 0 && slices.Contains(info.Exclude, p.instances[i].Addr) {
		i = p.nextAllowed(pos, info.Exclude)
	}
	return spi.PickResult{Instance: p.instances[i]}, nil
}

// search returns the position of the first virtual node at or after h,
// wrapping around the ring.
func (p *picker) search(h uint64) int {
	lo, hi := 0, len(p.points)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if p.points[mid] < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(p.points) {
		return 0
	}
	return lo
}

// nextAllowed walks clockwise from pos to the first virtual node whose
// instance is not excluded; when all are excluded it keeps pos's owner.
func (p *picker) nextAllowed(pos int, exclude []string) int32 {
	allExcluded := true
	for _, in := range p.instances {
		if !slices.Contains(exclude, in.Addr) {
			allExcluded = false
			break
		}
	}
	if allExcluded {
		return p.owners[pos]
	}
	n := len(p.points)
	for k := 1; k < n; k++ {
		i := p.owners[(pos+k)%n]
		if !slices.Contains(exclude, p.instances[i].Addr) {
			return i
		}
	}
	return p.owners[pos] // unreachable: every instance has a virtual node
}

// hashString is 64-bit FNV-1a, written out so hashing a key does not
// allocate (hash/fnv would need the string as a []byte).
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is SplitMix64's finaliser: FNV alone leaves similar short strings
// (addresses differing in one digit) close together on the ring.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
