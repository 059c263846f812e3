#!/usr/bin/env bash
# Installs Debian's chromium when /usr/bin/chromium is missing: the
# tests/ops status-page test renders the admin page in headless Chromium
# (and skips, saying so, without it). CI runs this before the tests.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing chromium (Debian package) for the status page test..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version >&2 || true
