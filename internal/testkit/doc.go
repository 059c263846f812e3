// Package testkit holds helpers shared by the test packages of this
// module (tests/..., examples/...): running the test binary again as a
// helper process, collecting a child's output safely, and cleaning up
// after tests against a real ZooKeeper.
//
// It is for tests only: no production package imports it. Helpers that
// belong to one package's tests stay in that package; what is here is
// used by at least two.
package testkit
