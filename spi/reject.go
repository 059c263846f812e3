package spi

// Rejection describes a call a server answered without running its
// filter chain: no filter saw it, so a metrics or tracing filter learns
// of it only through RejectObserver.
type Rejection struct {
	// Method is the method as the caller named it. It is the server's
	// own name for it only when Known; otherwise it is whatever the
	// caller sent, of unbounded cardinality: an observer must not use an
	// unknown name as a metric label as is.
	Method string
	// Known reports whether the server has Method.
	Known bool
	// Peer is the caller's address.
	Peer string
	// Protocol is the wire protocol of the call: "" for Kite's, or
	// ProtocolGRPC.
	Protocol string
	// Reason is a short, fixed name for why the call was refused (the
	// Reason* constants), fit for a metric label.
	Reason string
	// Err is the status the caller was answered with (for a one-way
	// call, the one it would have been). CodeOf(Err) is its code.
	Err error
	// OneWay marks a call that expected no answer.
	OneWay bool
}

// Reasons a server refuses a call before its filter chain.
const (
	// ReasonUnknownMethod: the server has no such method (Unimplemented).
	ReasonUnknownMethod = "unknown_method"
	// ReasonWrongKind: a stream method called as unary or the reverse
	// (Unimplemented).
	ReasonWrongKind = "wrong_kind"
	// ReasonShuttingDown: the server is draining (Unavailable; the call
	// was not processed, so a client may retry it elsewhere).
	ReasonShuttingDown = "shutting_down"
	// ReasonConcurrency: max_concurrency, max_conn_concurrency or the
	// peer's share of them (ResourceExhausted).
	ReasonConcurrency = "concurrency"
	// ReasonBodyMemory: the request does not fit the server's body
	// memory or the peer's share of it (ResourceExhausted).
	ReasonBodyMemory = "body_memory"
	// ReasonDeadline: the caller's deadline had passed on arrival
	// (DeadlineExceeded).
	ReasonDeadline = "deadline_expired"
	// ReasonBadRequest: a malformed request the server could still
	// answer (too large metadata, an unsupported codec or compressor, a
	// bad header).
	ReasonBadRequest = "bad_request"
)

// ProtocolGRPC is Call.Protocol and Rejection.Protocol for calls that
// arrived over gRPC (HTTP/2) rather than Kite's own protocol.
const ProtocolGRPC = "grpc"

// RejectObserver is implemented by filters that want to see the calls a
// server refuses before its filter chain runs (unknown method, shutting
// down, admission limits). A server calls CallRejected of every filter in
// its chain that implements it, once per refused call, on the goroutine
// that refuses it (mostly the connection's reader): it must be quick and
// must not block. r is valid only
// during the call.
type RejectObserver interface {
	CallRejected(r *Rejection)
}
