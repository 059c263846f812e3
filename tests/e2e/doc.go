// Package e2e holds Kite's end-to-end tests: real servers, each its own
// process, registered in a real ZooKeeper and a real etcd, called through
// a client that balances with lb-weighted and defends itself with
// retries, a retry budget and per-endpoint circuit breakers.
//
// The tests prove the "done when" of discovery and resilience:
//
//   - weights 1:2:7 split 10,000 calls within ±2 percentage points;
//   - with the registry unreachable (from the client and the servers
//     alike), calls keep flowing to the known instances while the
//     registry expires the servers' sessions or leases;
//   - when the registry is reachable again, every server re-registers and
//     all instances are back;
//   - a server killed with SIGKILL causes no failed idempotent call and
//     leaves rotation within its session or lease timeout.
//
// They need KITE_ZK_ADDR and KITE_ETCD_ADDR (scripts/services.sh up
// writes them to .kite/services.env; `make test` and CI always set them)
// and skip with a message otherwise. The registry is cut off by TCP
// proxies the test owns, so no shared server is ever stopped. Server
// processes are the test binary itself, re-executed with KITE_E2E_SERVER
// set.
package e2e
