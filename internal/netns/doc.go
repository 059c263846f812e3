// Package netns builds throw-away "hosts" for multi-host tests out of
// Linux network namespaces, and breaks the links between them.
//
// A Lab is one private network: a switch namespace holding a bridge, one
// namespace per Host wired to the bridge by a veth pair (the host side is
// eth0), and a veth from the bridge into the test's own namespace, so the
// test process — the clients — reaches every host at its address on a
// private /24 (10.231.X.0/24, X chosen free at creation). Nothing is
// routed beyond that segment: traffic stays inside these namespaces.
//
// Faults are nftables rules inside a host's namespace, on its eth0 only
// (its loopback is untouched):
//
//   - Partition drops every packet in and out: the host looks dead to the
//     others, no RST, no FIN, SYNs unanswered;
//   - SetLoss drops N% of the packets in each direction at random
//     (numgen random mod 100 < N), as a lossy link does; TCP
//     retransmits, so calls slow down rather than fail;
//   - Heal removes the rules.
//
// Latency and jitter are not done here (the kernels this runs on have no
// sch_netem); put internal/faultproxy on the path for them.
//
// Processes run inside a host with Host.Command / Host.Start (ip netns
// exec); they die with the test binary (parent-death signal) and are
// stopped when the test ends.
//
// Every name the package creates starts with "kt<pid>-": a Lab removes its
// namespaces and links in t.Cleanup (also when the test fails or panics),
// and New first sweeps what dead test processes left behind. It needs
// root, ip (iproute2) and nft (nftables); Require ends a test through
// testkit.Missing without them (a failure under CI=true).
// scripts/ensure-netns.sh installs the tools.
package netns
