// Package faults holds Kite's fault-injection tests: one test per fault
// scenario of docs/RELIABILITY.md, each asserting the documented outcome —
// the status code callers get, the time bound within which they get it and
// within which calls succeed again, that no call is lost (every call
// returns a result or an error within its deadline plus a grace period),
// and that no goroutine leaks (goleak over the whole package).
//
// Faults are injected with internal/faultproxy (delay, drop, cut, corrupt,
// black-hole between a client and a server), by SIGKILLing real processes
// (a server, which is the test binary re-executed with KITE_FAULTS_SERVER
// set, and an out-of-process registry plugin), and by taking registries
// away (a registry-local directory replaced by a file, a Nacos double that
// drops every connection).
//
// The scenarios:
//
//   - TestServerKilledMidStream: SIGKILL of a server process under a stream
//     and unary load;
//   - TestHalfOpenConnectionDetectedByHeartbeat: a black-holed peer;
//   - TestRegistryOutage: the local and nacos registries unreachable;
//   - TestRegistryPluginCrash: the registry plugin process SIGKILLed;
//   - TestSlowHandlerDeadline: handlers slower than the caller's deadline;
//   - TestCorruptedBytes: bytes flipped on one connection, both ways.
package faults
