#!/usr/bin/env bash
# The project's test command (make test / .ci/run): start the services
# the integration tests need, build plugin binaries, run go test -race,
# stop what was started.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f scripts/services.sh ]; then
  bash scripts/services.sh up
  trap 'bash scripts/services.sh down' EXIT
  # shellcheck disable=SC1091
  [ -f .kite/services.env ] && source .kite/services.env
fi

# The admin status page test renders in headless Chromium.
bash scripts/ensure-chromium.sh
# The Python plugin SDK's tests (tests/polyglot) need Debian's python3-grpcio.
bash scripts/ensure-python.sh
# ...and the Node SDK's need its npm dependencies.
bash scripts/ensure-node.sh
# codec-hessian's Java interop test needs a JDK and Debian's libhessian-java.
bash scripts/ensure-java.sh
# ip, nft and etcd for tests/cluster/hosts (network namespaces as hosts).
bash scripts/ensure-netns.sh
# protoc and protoc-gen-go (go.mod's version, into .kite/bin) for
# cmd/protoc-gen-kite's regeneration test.
bash scripts/ensure-tools.sh
# promtool (Debian prometheus) for tests/observability's exposition and
# dashboard checks.
bash scripts/ensure-prometheus.sh
export PATH="$PWD/.kite/bin:$PATH"
export KITE_ARTIFACTS="${KITE_ARTIFACTS:-$PWD/.kite/artifacts}"
mkdir -p "$KITE_ARTIFACTS"
# The tests get a temp dir of their own: whatever is left in it at the
# end (a plugin socket, a lock file, a directory a test forgot) is a leak
# a user's machine would keep, and fails the run below.
# It is outside the repository, as a user's temp dir is (tests build
# modules there that must not sit inside this one).
export TMPDIR="$(mktemp -d "${TMPDIR:-/tmp}/kite-test.XXXXXX")"
test_tmp=$TMPDIR
trap 'rm -rf "$test_tmp"; if [ -f scripts/services.sh ]; then bash scripts/services.sh down; fi' EXIT
# The local registry's per-user directory ($XDG_RUNTIME_DIR/kite, else
# $TMPDIR/kite-registry-<uid>) is where it lives by design, not a leak:
# give the run a fresh one of its own, outside the temp dir.
export XDG_RUNTIME_DIR="$PWD/.kite/run"
rm -rf "$XDG_RUNTIME_DIR"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"

make --no-print-directory plugins
unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
bash scripts/check-tidy.sh
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
# go test's own lines (ok/FAIL per package, failing tests' output) stay
# as a plain run prints them; internal/testsummary adds the summary:
# packages, tests run, skips with their reasons, fuzz seed corpora.
go build -o .kite/bin/testsummary ./internal/testsummary
go test -race -count=1 -timeout 20m -json ./... | .kite/bin/testsummary -o .kite/test-summary.txt
# bench/ is a module of its own (it pulls in gRPC and drpc to compare
# against): vet, lint and test it too, so the baselines keep working.
(cd bench && go vet ./... && go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./... && go test -race -count=1 -timeout 10m ./...)
# Every fuzz target briefly (make fuzz runs them longer): new inputs
# beyond the committed corpus, so a decoder change that crashes on them
# fails CI, not a user.
fuzz_rc=0
bash scripts/fuzz.sh "${KITE_CI_FUZZTIME:-3s}" | tee .kite/fuzz.log || fuzz_rc=$?
echo
echo "== make test summary =="
cat .kite/test-summary.txt
echo "  fuzz targets fuzzed: $(grep -cE '^  (ok|FAIL) ' .kite/fuzz.log || true), ${KITE_CI_FUZZTIME:-3s} each, $(grep -cE '^  FAIL ' .kite/fuzz.log || true) failed"
# go's own build directories go when go exits; anything else is a leak.
leftovers=$(find "$TMPDIR" -mindepth 1 -maxdepth 1 ! -name 'go-build*' -printf '%f\n' | sort)
if [ -n "$leftovers" ]; then
  echo "  left in the temp dir ($TMPDIR): $(echo $leftovers)" >&2
  exit 1
fi
echo "  temp dir: nothing left behind"
exit $fuzz_rc
