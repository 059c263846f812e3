// Package random is Kite's weighted random balancer (catalog name
// "random"): each call goes to an instance drawn at random with
// probability proportional to its weight (spi.Instance.EffectiveWeight).
//
// Random choice needs no shared counter, so unlike round-robin it has no
// contended cache line at all: a pick is a draw from the runtime's
// per-thread generator (math/rand/v2) and a binary search over the
// precomputed cumulative weights, with no lock and no allocation. When
// every instance has the same weight the search is skipped.
//
// PickInfo.Exclude (instances a retry already tried) is honoured by
// drawing again among the remaining instances, still by weight; when
// every instance is excluded the first draw stands.
//
// The package registers itself in spi.Default from init; import it for its
// side effect, or build a balancer directly with New.
package random
