#!/usr/bin/env bash
# Installs promtool, from Debian's prometheus package, when missing:
# tests/observability runs `promtool check metrics` on a running server's
# /metrics and `promtool check rules` on the PromQL of the shipped Grafana
# dashboard (docs/grafana/kite-dashboard.json). --no-install-recommends
# keeps the web UI assets and exporters out; the package's prometheus
# service is not started in a container without systemd, and the tests
# run only promtool. Under CI=true those tests fail, never skip, without it.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing promtool (Debian prometheus) for the observability tests..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
promtool --version 2>&1 | head -1 >&2
