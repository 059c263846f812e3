// Package newcomer runs what a new user is told to run: the commands of
// the README's "Next steps" section (the echo example's server, then the
// kite CLI against it), every example command in the CLI's help, and a
// call to every method kite.hcl names — against a live echo server built
// from the repository's kite.hcl, on a free port, with the local registry
// in a temporary directory. A README line the test does not know how to
// run fails it, so the README cannot gain an untested command.
package newcomer
