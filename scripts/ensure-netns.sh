#!/usr/bin/env bash
# Installs what tests/cluster/hosts needs for its multi-host harness
# (internal/netns), from Debian's packages, when missing:
#   ip    iproute2: network namespaces, veth pairs, a bridge
#   nft   nftables: partitions (drop) and random loss (numgen) inside a
#         namespace — the kernel of the CI machines has no sch_netem, so
#         tc netem is not an option
#   etcd  etcd-server: the registry host of the slow-start scenario
#         (scripts/services.sh installs it too)
# make test and make cluster-soak run it. The tests need root; under
# CI=true they fail, never skip, when a tool is missing.
set -euo pipefail
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing ${need[*]} (Debian packages) for the multi-host tests..." >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "netns tools: $(ip -V), $(nft --version)" >&2
