// Package tracingfilter is the "tracing" filter: OpenTelemetry spans on both
// sides of a call, joined by W3C trace context carried in the call's
// metadata.
//
// On the client it starts a span of kind Client named after the method
// ("Users.Get"), a child of whatever span the caller's context holds, and
// injects its context into Call.Meta under "traceparent" and "tracestate" —
// keys the Kite wire protocol encodes in one byte each. On the server it
// extracts that context and starts a span of kind Server as its child, so a
// trace begun in a client continues through every service it calls; the
// handler's context carries the server span, so spans the handler starts
// (and calls it makes through a traced client) nest below it.
//
// Spans carry rpc.system="kite", rpc.service, rpc.method, rpc.kite.code (the
// status name) and network.peer.address/port when the peer is known. A client
// span's status is Error for any failure; a server span's only for codes that
// mean the server failed (Unknown, DeadlineExceeded, Unimplemented, Internal,
// Unavailable, DataLoss), following the OpenTelemetry RPC conventions: a
// NotFound is the caller's business, not a server fault.
//
// The filter uses otel.GetTracerProvider() and otel.GetTextMapPropagator()
// unless TracerProvider / Propagator (package level, or per Filter) say
// otherwise, so it works with any exporter the program installs. When the
// global propagator is the no-op default it falls back to W3C trace context:
// a tracing filter that propagated nothing would be a surprising default.
package tracingfilter
