package tracingfilter

import (
	"context"
	"net"
	"strconv"
	"strings"

	"github.com/kiterpc/kite/spi"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// InstrumentationName names the tracer this filter asks providers for.
const InstrumentationName = "github.com/kiterpc/kite/plugins/filter-tracing"

const version = "1.0.0"

// Attribute keys set on every span.
const (
	AttrSystem      = attribute.Key("rpc.system")
	AttrService     = attribute.Key("rpc.service")
	AttrMethod      = attribute.Key("rpc.method")
	AttrCode        = attribute.Key("rpc.kite.code")
	AttrPeerAddress = attribute.Key("network.peer.address")
	AttrPeerPort    = attribute.Key("network.peer.port")
)

// Package-level defaults for filters built from kite.hcl. Set them before
// the stack is built; nil means the OpenTelemetry globals.
var (
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
)

// Filter traces calls. The zero value is ready: it uses the package
// defaults, then the OpenTelemetry globals.
type Filter struct {
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
}

// MetadataOnly implements spi.MetadataFilter: spans come from the
// metadata, never the request, so it does not hold back authentication
// before decoding.
func (*Filter) MetadataOnly() {}

// Wrap implements spi.Filter. The tracer and propagator are resolved once
// here: the global provider is a delegate that follows a later
// otel.SetTracerProvider, so resolving early loses nothing.
func (f *Filter) Wrap(next spi.Invoker) spi.Invoker {
	tp := f.TracerProvider
	if tp == nil {
		tp = TracerProvider
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	prop := f.Propagator
	if prop == nil {
		prop = Propagator
	}
	if prop == nil {
		prop = globalPropagator{}
	}
	tracer := tp.Tracer(InstrumentationName, trace.WithInstrumentationVersion(version))
	return func(ctx context.Context, call *spi.Call) error {
		if call.Side == spi.ServerSide {
			return serve(ctx, call, next, tracer, prop)
		}
		return send(ctx, call, next, tracer, prop)
	}
}

func send(ctx context.Context, call *spi.Call, next spi.Invoker, tracer trace.Tracer, prop propagation.TextMapPropagator) error {
	ctx, span := tracer.Start(ctx, call.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(callAttrs(call)...))
	defer span.End()
	if call.Meta == nil {
		call.Meta = &spi.Metadata{}
	}
	prop.Inject(ctx, Carrier(call.Meta))
	err := next(ctx, call)
	finish(span, call, err, true)
	return err
}

func serve(ctx context.Context, call *spi.Call, next spi.Invoker, tracer trace.Tracer, prop propagation.TextMapPropagator) error {
	if call.Meta != nil {
		ctx = prop.Extract(ctx, Carrier(call.Meta))
	}
	attrs := callAttrs(call)
	attrs = appendPeer(attrs, call.Peer)
	ctx, span := tracer.Start(ctx, call.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attrs...))
	defer span.End()
	err := next(ctx, call)
	finish(span, call, err, false)
	return err
}

func callAttrs(call *spi.Call) []attribute.KeyValue {
	svc, m := splitMethod(call.Method)
	attrs := make([]attribute.KeyValue, 0, 6)
	return append(attrs, AttrSystem.String("kite"), AttrService.String(svc), AttrMethod.String(m))
}

func finish(span trace.Span, call *spi.Call, err error, client bool) {
	code := spi.CodeOf(err)
	span.SetAttributes(AttrCode.String(code.String()))
	if client && call.Peer != "" {
		// The client learns the instance only once the balancer picked.
		span.SetAttributes(appendPeer(nil, call.Peer)...)
	}
	if err == nil {
		return
	}
	if client || serverFault(code) {
		span.SetStatus(codes.Error, err.Error())
		span.RecordError(err)
	}
}

// serverFault reports whether code means the server failed, as opposed to
// the caller asking for something wrong.
func serverFault(c spi.Code) bool {
	switch c {
	case spi.Unknown, spi.DeadlineExceeded, spi.Unimplemented, spi.Internal, spi.Unavailable, spi.DataLoss:
		return true
	}
	return false
}

// splitMethod splits "pkg.Service.Method" at its last dot.
func splitMethod(full string) (service, method string) {
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "", full
}

func appendPeer(attrs []attribute.KeyValue, peer string) []attribute.KeyValue {
	if peer == "" {
		return attrs
	}
	host, port, err := net.SplitHostPort(peer)
	if err != nil {
		return append(attrs, AttrPeerAddress.String(peer))
	}
	attrs = append(attrs, AttrPeerAddress.String(host))
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, AttrPeerPort.Int(p))
	}
	return attrs
}

// Carrier adapts call metadata to OpenTelemetry's TextMapCarrier, so any
// propagator can read and write it. It does not allocate.
func Carrier(md *spi.Metadata) propagation.TextMapCarrier { return (*carrier)(md) }

type carrier spi.Metadata

func (c *carrier) Get(key string) string { return (*spi.Metadata)(c).Get(key) }
func (c *carrier) Set(key, value string) { (*spi.Metadata)(c).Set(key, value) }
func (c *carrier) Keys() []string {
	md := (*spi.Metadata)(c)
	keys := make([]string, 0, md.Len())
	md.Range(func(k, _ string) bool {
		keys = append(keys, k)
		return true
	})
	return keys
}

// globalPropagator defers to otel.GetTextMapPropagator() per call, so a
// propagator installed after the stack was built still applies, and uses
// W3C trace context while the global one is the no-op default.
type globalPropagator struct{}

var w3c propagation.TextMapPropagator = propagation.TraceContext{}

func (globalPropagator) current() propagation.TextMapPropagator {
	p := otel.GetTextMapPropagator()
	if len(p.Fields()) == 0 {
		return w3c
	}
	return p
}

func (g globalPropagator) Inject(ctx context.Context, c propagation.TextMapCarrier) {
	g.current().Inject(ctx, c)
}

func (g globalPropagator) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	return g.current().Extract(ctx, c)
}

func (g globalPropagator) Fields() []string { return g.current().Fields() }

type config struct{}

// New builds the filter from its kite.hcl block (which has no attributes:
// the provider and exporter are the program's choice).
func New(cfg spi.Config) (any, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	return &Filter{}, nil
}

func init() {
	spi.Register(spi.Entry{
		Kind: spi.KindFilter, Name: "tracing", Version: version,
		Doc: "OpenTelemetry client and server spans joined by W3C trace context in call metadata",
		New: New,
	})
}
