// Package hosts holds the multi-host scenarios of issue 14: Kite servers
// on several "hosts" — network namespaces built by internal/netns, each
// running this test binary as a Kite server process — called by clients
// in the test process across a bridge, with faults on the links made by
// nftables inside the hosts (partitions that look like dead hosts, random
// loss) and by internal/faultproxy (latency and jitter):
//
//   - TestPartitionedHostEjected (scenario 3): a host cut off both ways is
//     ejected by heartbeat and breaker within the configured bound; calls
//     in flight fail over (idempotent) or end Unavailable (not); no call
//     outlives its deadline.
//   - TestLossyLinks (scenario 4): 50 ms ± 10 ms each way and 1% loss on
//     every link under load: p99 and error rate measured, and the retry
//     budget keeps the added attempts within its cap.
//   - TestHostRejoinsWithSlowStart (scenario 5): a host partitioned until
//     its etcd lease expires comes back, re-registers, and gets traffic
//     again, ramped up over the balancer's slow-start window.
//
// They need root, ip, nft and etcd (scripts/ensure-netns.sh installs the
// tools; under CI=true a missing one fails the tests). Each runs one
// round in `make test`; with KITE_CLUSTER_SOAK_DURATION set (`make
// cluster-soak`) each repeats its rounds for a third of that duration and
// prints a SUMMARY line. The figures are in docs/RELIABILITY.md
// ("Clusters and partitions").
package hosts
