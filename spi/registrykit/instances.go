package registrykit

import (
	"maps"
	"slices"
	"strings"

	"github.com/kiterpc/kite/spi"
)

// Clone returns a copy of in that shares no Tags or Metadata with it, so
// a caller may change either without touching the registry's copy.
func Clone(in spi.Instance) spi.Instance {
	in.Tags = slices.Clone(in.Tags)
	in.Metadata = maps.Clone(in.Metadata)
	return in
}

// CloneAll deep-copies list (see Clone). The result is never nil: a
// snapshot with no instances is an empty list.
func CloneAll(list []spi.Instance) []spi.Instance {
	out := make([]spi.Instance, len(list))
	for i, in := range list {
		out[i] = Clone(in)
	}
	return out
}

// Same reports whether x and y describe the same instance in every
// field. Nil and empty Tags or Metadata are the same: backends differ in
// which of the two they return.
func Same(x, y spi.Instance) bool {
	return x.Service == y.Service && x.Addr == y.Addr && x.Weight == y.Weight &&
		x.Version == y.Version && x.Zone == y.Zone && slices.Equal(x.Tags, y.Tags) &&
		maps.Equal(x.Metadata, y.Metadata)
}

// Equal reports whether two snapshots hold the same instances in the same
// order (see Same). Snapshots sorted with SortByAddr compare as sets.
func Equal(a, b []spi.Instance) bool { return slices.EqualFunc(a, b, Same) }

// SortByAddr sorts list by address, the order every Kite registry
// delivers snapshots in, so that two reads of one set compare Equal.
func SortByAddr(list []spi.Instance) {
	slices.SortFunc(list, func(a, b spi.Instance) int { return strings.Compare(a.Addr, b.Addr) })
}
