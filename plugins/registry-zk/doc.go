// Package zookeeper is Kite's ZooKeeper registry ("zk"), built on
// github.com/go-zookeeper/zk.
//
// Layout: every instance is an ephemeral znode
//
//	<root>/services/<service>/<addr>     data: the instance as JSON
//
// whose persistent parents are created on demand. Ephemeral nodes live as
// long as the client's session: a server that dies, or loses ZooKeeper
// for longer than the session timeout, drops out by itself.
//
// With several servers (an ensemble), the client library moves to
// another member when its connection breaks; Register, Deregister and
// Resolve that meet the broken connection wait for the reconnect (up to
// the session timeout, or FirstSessionGrace for a client that never had
// a session) instead of failing, so a leader election or a dead member
// costs a delay, not an error (tests/cluster/ensemble).
//
// Session expiry is recovered from: the client opens a new session and
// re-creates every node registered through it, so a server that was cut
// off for a while reappears without restarting. Watches use ChildrenW on
// the service node plus GetW on each instance node (so weight or
// metadata changes are seen too), and are re-armed after reconnects and
// expiries. While ZooKeeper is unreachable a watch keeps its last
// snapshot: callers keep calling the instances they know.
//
// With username and password (Config) the session authenticates with
// ZooKeeper's digest scheme and every node the registry creates carries
// the ACL digest:<user>:<sha1> with all permissions plus, unless
// world_read is false, world read: other clients can discover but not
// delete, overwrite or add instances (NoAuth, reported as
// PermissionDenied naming the client's identity, never its password).
package zookeeper
