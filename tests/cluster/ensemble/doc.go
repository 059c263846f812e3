// Package ensemble holds the registry-cluster scenarios of issue 14: Kite
// servers registering in, and clients watching, a replicated registry
// — a 3-node ZooKeeper ensemble, a 3-member etcd cluster, both started
// by internal/quorum — while members of that registry are killed:
//
//   - TestZooKeeperLeaderKilled: the ensemble's leader is SIGKILLed under
//     load while the registered set changes; no idempotent call is lost
//     or fails, and the client's view converges (time measured).
//   - TestEtcdMemberLossAndQuorumLoss: an etcd member is killed and
//     restored, then two of three are down (quorum lost) for a while;
//     clients keep calling the last known instances with zero failures
//     and registrations resume once quorum is back.
//
// The tests run in `make test` with short outages. Setting
// KITE_CLUSTER_SOAK_DURATION (a Go duration, e.g. "5m"; `make
// cluster-soak` sets it) repeats the scenarios' rounds until that much
// time has passed, with the full 30 s quorum loss. Figures are logged
// (go test -v) and recorded in docs/RELIABILITY.md.
package ensemble
