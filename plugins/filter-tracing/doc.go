// Package tracingfilter is the "tracing" filter: OpenTelemetry spans on both
// sides of a call, joined by W3C trace context carried in the call's
// metadata, and the OpenTelemetry RPC duration metrics.
//
// It follows the OpenTelemetry semantic conventions for RPC of release
// v1.44.0 (SemconvVersion; for RPC the same as v1.43.0, the newest the Go
// module ships as go.opentelemetry.io/otel/semconv/v1.43.0).
//
// On the client it starts a span of kind Client, a child of whatever span
// the caller's context holds, and injects its context into Call.Meta under
// "traceparent" and "tracestate" — keys the Kite wire protocol encodes in one
// byte each. On the server it extracts that context and starts a span of kind
// Server as its child, so a trace begun in a client continues through every
// service it calls; the handler's context carries the server span.
//
// Spans are named by rpc.method, "$package.$service/$method" ("shop.v1.Users/Get"
// for the Kite method shop.v1.Users.Get), and carry
//
//	rpc.system.name           "kite", or "grpc" for calls a server took on its gRPC path
//	rpc.method                "shop.v1.Users/Get"
//	rpc.response.status_code  gRPC's status name: "OK", "NOT_FOUND", … (Kite's codes are gRPC's)
//	error.type                the status name, when the call failed (see below)
//	server.address/port       client: the instance the call went to
//	network.peer.address/port both sides: the other end of the connection
//	rpc.system, rpc.service   the v1.37.0 keys ("kite", "shop.v1.Users"), kept for existing queries
//
// A call failed, and its span status is Error with error.type set, for any
// non-OK status on the client; on the server only for the codes the
// conventions list for gRPC servers (UNKNOWN, DEADLINE_EXCEEDED,
// UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS): a NOT_FOUND is the
// caller's business, not a server fault.
//
// Metrics: rpc.server.call.duration and rpc.client.call.duration, float64
// histograms in seconds with the conventions' buckets, attributes
// rpc.system.name, rpc.method, rpc.response.status_code and error.type. A
// call a server refused before its chain (spi.RejectObserver) is recorded
// with duration 0, and with rpc.method "_OTHER" when the method is unknown.
//
// The filter uses otel.GetTracerProvider(), otel.GetMeterProvider() and
// otel.GetTextMapPropagator() unless TracerProvider / MeterProvider /
// Propagator (package level, or per Filter) say otherwise, so it works with
// any exporter the program installs. When the global propagator is the no-op
// default it falls back to W3C trace context: a tracing filter that
// propagated nothing would be a surprising default.
package tracingfilter
