// Package ops holds the operations tests of a whole Kite stack built from
// kite.hcl: the admin listener's /metrics counts after real calls,
// /healthz flipping to 503 when a shutdown starts, the status page
// rendered in headless Chromium (screenshot kept in $KITE_ARTIFACTS),
// `kite call <client> Health.Check` through the CLI binary, and SIGHUP /
// SIGTERM on real server and client processes under load (the test
// binary re-executes itself in those roles).
//
// The Chromium test needs /usr/bin/chromium (scripts/ensure-chromium.sh
// installs it) and skips with a message when it is absent.
package ops
