// Package static is Kite's "static" registry: the instances of a service
// are listed in kite.hcl, for setups where addresses are known up front
// (a fixed pair of servers, a sidecar, tests).
//
// Register and Deregister work in memory, for this process only: every
// static registry in the process that shares a group sees what the
// others registered, so a server and a client in one binary find each
// other without any external store. Nothing is shared between processes;
// use the "local" registry for one machine, or ZooKeeper/etcd/Nacos
// beyond it.
package static
