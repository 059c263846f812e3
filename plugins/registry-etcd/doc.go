// Package etcd is Kite's etcd registry (catalog name "etcd").
//
// Every instance a process registers is stored under
// "<prefix>/<service>/<addr>" (prefix "/kite/services" by default) as the
// JSON of spi.Instance, attached to one lease per Registry that is kept
// alive with KeepAlive. When the process dies the lease runs out after
// ttl and etcd removes its instances; when the lease is lost while the
// process lives (a long partition, a revoke, a restored snapshot) the
// registry grants a new lease and writes every registration again.
//
// Watch lists the prefix and then follows it from the listed revision,
// handing out full snapshots; a compaction or watch error makes it list
// again. While etcd is unreachable, watchers keep their last snapshot
// and Resolve answers from the last list it saw for that service.
//
// With several endpoints (a cluster), the client spreads requests over
// the members that answer. Writes — put, delete, lease grant, all safe
// to repeat — that fail because the cluster is electing or lost the
// member holding the request are tried again (each try bounded to 2 s)
// until the caller's context ends, so a leader change or a dead member
// costs a delay, not an error; while quorum is lost they fail when the
// context ends, and succeed once it is back (tests/cluster/ensemble).
//
// Config.Layout "kitex" switches to the keys and values of Kitex's etcd
// registry (kitex-contrib/registry-etcd): kitex/registry-etcd/<service>/
// <addr> → {"network","address","weight","tags"}, so Kite and Kitex
// processes on one etcd discover each other.
//
// The package registers itself in spi.Default from init; import it for
// its side effect, or build a Registry directly with New.
package etcd
