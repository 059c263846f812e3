package spi

import "context"

// Side tells a filter whether it runs in a client or a server.
type Side uint8

// Sides.
const (
	ClientSide Side = 1
	ServerSide Side = 2
)

func (s Side) String() string {
	if s == ServerSide {
		return "server"
	}
	return "client"
}

// Call is what filters see of one call. On the client Request is the
// value to send and Response the value to fill; on the server Request is
// the decoded request and Response is set by the handler. Filters may
// read and change Meta (request metadata) and Trailer (response
// metadata). A Call is only valid during the invocation it belongs to.
type Call struct {
	Side     Side
	Method   string // "Service.Method"
	Peer     string // remote address
	Request  any
	Response any
	Meta     *Metadata
	Trailer  *Metadata
	// OneWay marks a call that expects no response.
	OneWay bool
	// Stream marks the opening of a stream; Request/Response are nil.
	Stream bool
	// Protocol is the wire protocol of the call: "" for Kite's own,
	// ProtocolGRPC for gRPC — on a server the path the call arrived on,
	// on a client its transport (core.GRPCTransport).
	Protocol string
}

// Invoker performs a call: on the client it sends it, on the server it
// runs the handler.
type Invoker func(ctx context.Context, call *Call) error

// Filter is an interceptor. Wrap is called once when the chain is built,
// never per call; the returned Invoker may short-circuit by not calling
// next.
type Filter interface {
	Wrap(next Invoker) Invoker
}

// MetadataFilter is implemented by filters whose server side reads only a
// call's Method, Peer and Meta, never its Request. A server runs the
// metadata filters at the head of its chain (those before the first
// filter that is not one) before it decompresses and decodes the request
// body: a call they refuse, such as one without a valid token, costs no
// decoding, and Request is nil while they run. Their place in the chain
// is unchanged.
type MetadataFilter interface {
	Filter
	// MetadataOnly marks the filter; it is never called.
	MetadataOnly()
}

// BeforeOnlyFilter is implemented by filters that act only before they
// call next: their invoker returns next's error unchanged and does not
// touch the call (Trailer, Response) once next has returned — an
// authentication check, a deny list, a metadata stamp. Served out of
// process such a filter costs one exchange with its plugin per call
// instead of two, since the bridge need not bring the result back to it.
// Compiled in the mark changes nothing.
type BeforeOnlyFilter interface {
	Filter
	// BeforeOnly marks the filter; it is never called.
	BeforeOnly()
}

// FilterFunc adapts a function to Filter.
type FilterFunc func(next Invoker) Invoker

// Wrap implements Filter.
func (f FilterFunc) Wrap(next Invoker) Invoker { return f(next) }

// Chain composes filters so that filters[0] runs first (outermost).
func Chain(final Invoker, filters ...Filter) Invoker {
	for i := len(filters) - 1; i >= 0; i-- {
		final = filters[i].Wrap(final)
	}
	return final
}
