// Package core is Kite's runtime: the server that accepts connections and
// dispatches frames to registered services, the client that multiplexes
// calls over pooled long-lived connections, streams, and the built-in
// transports (tcp, unix, tls). core has no filters of its own: recover,
// log, metrics and the rest are plugins (plugins/filter-*), which the root
// kite package links by default. The server still turns a handler's panic
// into an Internal error for the caller, filters or not. Zero option
// values take the defaults of core/defaults, the table kite.hcl uses too.
//
// Data flows one way. A call: client filters → picker → pool → codec →
// frame → batching writer. On the server: reader → frame → concurrency
// limit → server filters → method table → handler, and back the same way.
// Nothing on that path takes a global lock, builds a map or calls out of
// process unless the user configured exactly that.
//
// gRPC: a server with EnableGRPC also answers gRPC (HTTP/2) on the same
// listeners, told apart from Kite peers by each connection's first bytes
// (grpc.go, grpc_conn.go); the "grpc" transport (GRPCTransport,
// grpc_client.go) lets a Kite client call plain gRPC servers. HTTP/2
// framing and HPACK come from golang.org/x/net/http2; docs/GRPC.md says
// why and how names, codes, deadlines and metadata map.
//
// core imports spi and never a plugin; codecs and compressors are found
// in the spi catalog (compiled-in plugins register there from init).
package core
