// Package swapregistry is the swap-registry example: one compiled echo
// server (./server) and one client (./client) that read kite.hcl, run
// first on the local registry, then on ZooKeeper and etcd, by changing
// only the file. See README.md; swap_test.go runs exactly that.
package swapregistry
