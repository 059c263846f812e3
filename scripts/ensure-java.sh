#!/usr/bin/env bash
# Installs what codec-hessian's Java interop test (TestJavaInterop) needs,
# from Debian's packages, when missing: a JDK (javac and java) and Caucho
# Hessian (libhessian-java, /usr/share/java/hessian.jar). CI runs this
# before the tests; under CI=true the test fails, never skips, without it.
set -euo pipefail
need=()
command -v javac >/dev/null 2>&1 || need+=(default-jdk-headless)
[ -f /usr/share/java/hessian.jar ] || need+=(libhessian-java)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing ${need[*]} (Debian packages) for the Hessian Java interop test..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
javac -version >&2
