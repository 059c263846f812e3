// Package quorum starts replicated registry backends for tests: a
// ZooKeeper ensemble (Debian package `zookeeper`, QuorumPeerMain) and an
// etcd cluster (Debian package `etcd-server`), each of N members on
// loopback ports of their own, in a directory of their own.
//
// A test controls every member: Kill (SIGKILL, as a crashed host),
// Stop (SIGTERM), Start again on the same ports and data, ask which
// member leads, and wait until the cluster serves. Everything a cluster
// started is ended and its directory removed by Close — from t.Cleanup
// with the testing helpers (ZooKeeper, Etcd), so also when the test
// fails — and every member process dies with the test binary even when
// that is killed (Linux parent-death signal).
//
//	zk := quorum.ZooKeeper(t, 3)           // fails under CI=true when zookeeper is missing
//	leader := zk.WaitLeader(t, 20*time.Second)
//	leader.Kill()
//	...
//	leader.Start()
//
// It is for tests only: no production package imports it. The shell
// equivalent for humans is scripts/cluster.sh.
package quorum
