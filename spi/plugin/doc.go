// Package plugin is Kite's out-of-process plugin bridge over
// hashicorp/go-plugin (gRPC mode): the SDK a plugin binary is built with
// (Serve, ServeDefault) and the host side that starts, checks, supervises
// and adapts such binaries (Load, Process).
//
// The protocol is spi/plugin/proto/kiteplugin.proto (package
// kite.plugin.v1), documented in docs/PLUGINS.md; any language with gRPC
// can implement it.
//
// A plugin main is one line around an spi.Entry, so the same plugin
// package serves compiled in and out of process:
//
//	func main() { plugin.ServeDefault(spi.KindBalancer, weighted.Name) }
//
// The host loads it with Load, which returns an spi.Entry whose factory
// builds host-side adapters implementing the kind's spi interface, so the
// core cannot tell a bridged implementation from a compiled-in one:
//
//   - Registry: every method; Watch is a server stream of full snapshots.
//     Registrations are replayed and watches reopened after a restart.
//   - Balancer: asked once per instance-list change for a picking table
//     (spi.PickTable); picks are made here, lock-free, never across the
//     process boundary.
//   - Codec: values cross in canonical form (their encoding/json form),
//     costing a JSON encode or decode plus a round trip per call.
//   - Compressor: bytes in, bytes out, a round trip per call.
//   - Filter: Before and After exchanges carrying method, side, peer
//     and metadata; never the request or response values. A Go plugin
//     serves them on its filter channel (length-prefixed frames on a
//     private Unix socket announced in Info, multiplexed, writes batched)
//     rather than as gRPC calls; an spi.BeforeOnlyFilter needs only the
//     Before exchange. Plugins without the channel are called on gRPC.
//   - Transport: never out of process (a round trip per read and write).
//
// Load verifies the binary's SHA-256 before it runs, negotiates the bridge
// protocol version, uses automatic mutual TLS, and on Linux starts the
// plugin with a parent-death signal so it dies with the host even when the
// host is SIGKILLed. When a plugin crashes, calls get an Unavailable
// *spi.Error naming it, and a supervisor restarts it with exponential
// backoff and configures it again.
package plugin
