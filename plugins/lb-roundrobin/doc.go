// Package roundrobin is Kite's round-robin balancer (catalog name
// "round_robin"): every instance gets the same share of calls, in turn,
// whatever its weight.
//
// Build copies the instance list into an immutable picker; Pick is one
// atomic increment and an index, with no lock and no allocation. Each
// picker starts at a random position so that many clients built from the
// same registry snapshot do not all send their first calls to the same
// instance.
//
// PickInfo.Exclude (instances a retry already tried) is honoured by
// stepping on to the next instance in turn; when every instance is
// excluded the picker answers with the one it would have picked anyway,
// since retrying somewhere beats failing the call.
//
// The package registers itself in spi.Default from init; import it for its
// side effect, or build a balancer directly with New.
package roundrobin
