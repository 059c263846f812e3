// Package weighted is Kite's default balancer (catalog name "weighted"):
// smooth weighted round-robin over spi.Instance.EffectiveWeight, the
// algorithm nginx uses for its upstreams, with an optional slow start
// for instances that just appeared.
//
// # Smooth weighted round-robin without a lock
//
// nginx runs SWRR per pick under a lock: every instance's "current" value
// grows by its weight, the largest is chosen and lowered by the total.
// The sequence that produces is periodic (its period is the sum of the
// weights), so Kite runs the algorithm once per Build and stores one
// period as a slice of instance indexes, the schedule; a pick is then an
// atomic increment of a counter and an index into that slice. Weights are
// divided by their greatest common divisor first (100:200:700 becomes
// 1:2:7, a schedule of 10), and when the sum still exceeds MaxSchedule
// they are scaled down proportionally, each keeping at least one slot.
// The schedule keeps SWRR's smoothness: with weights 1:2:7 the heavy
// instance is never picked more than three times in a row, and the light
// ones are spread evenly through the period instead of bunching up.
//
// # Slow start
//
// With slow_start set, an instance that the balancer first sees less than
// slow_start ago gets its weight ramped up linearly, in RampSteps steps,
// from 1/RampSteps of its weight to all of it, so a freshly started server
// (cold caches, JIT-less but still lazy connection pools, an empty page
// cache) is not handed its full share at once. The balancer remembers
// when it first saw each address across Builds and forgets addresses that
// leave, so an instance that restarts ramps again. The instances of the
// very first Build are taken as warm: a client that just started has no
// reason to believe its servers did too.
//
// While some instance is ramping, the schedule is valid until the next
// ramp step; the first pick after that rebuilds it and swaps it in through
// an atomic pointer, while concurrent picks keep using the previous one,
// so no pick ever waits on a lock. When no instance is ramping the picker
// does not even read the clock.
//
// PickInfo.Exclude (instances a retry already tried) is honoured by
// walking on through the schedule to the next allowed instance; when every
// instance is excluded the scheduled one is returned.
//
// The package registers itself in spi.Default from init; import it for its
// side effect, or build a balancer directly with New.
package weighted
