// Package core is Kite's runtime: the server that accepts connections and
// dispatches frames to registered services, the client that multiplexes
// calls over pooled long-lived connections, streams, the built-in
// transports (tcp, unix) and filters (recover, log).
//
// Data flows one way. A call: client filters → picker → pool → codec →
// frame → batching writer. On the server: reader → frame → concurrency
// limit → server filters → method table → handler, and back the same way.
// Nothing on that path takes a global lock, builds a map or calls out of
// process unless the user configured exactly that.
//
// core imports spi and never a plugin; codecs and compressors are found
// in the spi catalog (compiled-in plugins register there from init).
package core
