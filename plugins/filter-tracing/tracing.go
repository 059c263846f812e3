package tracingfilter

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/spi"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/semconv/v1.43.0/rpcconv"
	"go.opentelemetry.io/otel/trace"
)

// InstrumentationName names the tracer and meter this filter asks
// providers for.
const InstrumentationName = "github.com/kiterpc/kite/plugins/filter-tracing"

const version = "2.0.0"

// SemconvVersion is the OpenTelemetry semantic conventions release whose
// RPC spans and metrics the filter follows (RPC conventions of release
// candidate status; for RPC v1.44.0 differs from v1.43.0, the newest the
// Go module ships as semconv/v1.43.0, only in wording).
const SemconvVersion = "1.44.0"

// Attribute keys. The first group is the conventions' current set; the
// legacy keys are the v1.37.0 ones that name the system and the service,
// kept so queries written against them (and otelgrpc's default output)
// still match.
const (
	AttrSystemName     = attribute.Key("rpc.system.name")
	AttrMethod         = attribute.Key("rpc.method") // "pkg.Service/Method"
	AttrMethodOriginal = attribute.Key("rpc.method_original")
	AttrStatusCode     = attribute.Key("rpc.response.status_code")
	AttrErrorType      = attribute.Key("error.type")
	AttrServerAddress  = attribute.Key("server.address")
	AttrServerPort     = attribute.Key("server.port")
	AttrPeerAddress    = attribute.Key("network.peer.address")
	AttrPeerPort       = attribute.Key("network.peer.port")

	AttrSystem  = attribute.Key("rpc.system")  // legacy (v1.37.0): same value as rpc.system.name
	AttrService = attribute.Key("rpc.service") // legacy (v1.37.0): "pkg.Service"
)

// RPC system names: Kite's own protocol, and gRPC for calls a Kite server
// served on its gRPC path (spi.Call.Protocol). "kite" is a custom value,
// which the conventions allow where no well-known one applies.
const (
	SystemKite = "kite"
	SystemGRPC = "grpc"
)

// OtherMethod is rpc.method for a method the server does not have.
const OtherMethod = "_OTHER"

// Package-level defaults for filters built from kite.hcl. Set them before
// the stack is built; nil means the OpenTelemetry globals.
var (
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
)

// Filter traces calls and records the RPC duration metrics. The zero
// value is ready: it uses the package defaults, then the OpenTelemetry
// globals.
type Filter struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator

	// server is the rpc.server.call.duration instrument of the last
	// Wrap, for CallRejected (nil until a chain was built).
	server atomic.Pointer[rpcconv.ServerCallDuration]
}

// MetadataOnly implements spi.MetadataFilter: spans come from the
// metadata, never the request, so it does not hold back authentication
// before decoding.
func (*Filter) MetadataOnly() {}

// instruments are the two histograms of the conventions.
type instruments struct {
	server rpcconv.ServerCallDuration
	client rpcconv.ClientCallDuration
}

// Wrap implements spi.Filter. The tracer, meter and propagator are
// resolved once here: the global providers are delegates that follow a
// later otel.SetTracerProvider / SetMeterProvider, so resolving early
// loses nothing.
func (f *Filter) Wrap(next spi.Invoker) spi.Invoker {
	tp := f.TracerProvider
	if tp == nil {
		tp = TracerProvider
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	mp := f.MeterProvider
	if mp == nil {
		mp = MeterProvider
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	prop := f.Propagator
	if prop == nil {
		prop = Propagator
	}
	if prop == nil {
		prop = globalPropagator{}
	}
	tracer := tp.Tracer(InstrumentationName, trace.WithInstrumentationVersion(version), trace.WithSchemaURL(schemaURL))
	meter := mp.Meter(InstrumentationName, metric.WithInstrumentationVersion(version), metric.WithSchemaURL(schemaURL))
	var ins instruments
	var err error
	// On error the conventions' helpers return a no-op instrument: the
	// calls go on, untimed, and the provider's error handler hears why.
	if ins.server, err = rpcconv.NewServerCallDuration(meter); err != nil {
		otel.Handle(err)
	}
	if ins.client, err = rpcconv.NewClientCallDuration(meter); err != nil {
		otel.Handle(err)
	}
	f.server.Store(&ins.server)
	return func(ctx context.Context, call *spi.Call) error {
		if call.Side == spi.ServerSide {
			return serve(ctx, call, next, tracer, prop, &ins)
		}
		return send(ctx, call, next, tracer, prop, &ins)
	}
}

const schemaURL = "https://opentelemetry.io/schemas/" + SemconvVersion

func send(ctx context.Context, call *spi.Call, next spi.Invoker, tracer trace.Tracer, prop propagation.TextMapPropagator, ins *instruments) error {
	sys := systemOf(call)
	name, svc := rpcMethod(call.Method)
	start := time.Now()
	ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start),
		trace.WithAttributes(AttrSystemName.String(sys), AttrMethod.String(name), AttrSystem.String(sys), AttrService.String(svc)))
	if call.Meta == nil {
		call.Meta = &spi.Metadata{}
	}
	prop.Inject(ctx, Carrier(call.Meta))
	err := next(ctx, call)
	end := time.Now()
	code := spi.CodeOf(err)
	status := StatusName(code)
	failed := code != spi.OK // on the client every non-OK status is an error
	if call.Peer != "" {
		// The client learns the instance only once the balancer picked:
		// it is both the server it addressed and the network peer.
		span.SetAttributes(hostPort(AttrServerAddress, AttrServerPort, call.Peer)...)
		span.SetAttributes(hostPort(AttrPeerAddress, AttrPeerPort, call.Peer)...)
	}
	finish(span, status, failed, err)
	span.End(trace.WithTimestamp(end))
	ins.client.Record(ctx, end.Sub(start).Seconds(), rpcconv.SystemNameAttr(sys), metricAttrs(name, status, failed)...)
	return err
}

func serve(ctx context.Context, call *spi.Call, next spi.Invoker, tracer trace.Tracer, prop propagation.TextMapPropagator, ins *instruments) error {
	if call.Meta != nil {
		ctx = prop.Extract(ctx, Carrier(call.Meta))
	}
	sys := systemOf(call)
	name, svc := rpcMethod(call.Method)
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, AttrSystemName.String(sys), AttrMethod.String(name), AttrSystem.String(sys), AttrService.String(svc))
	attrs = append(attrs, hostPort(AttrPeerAddress, AttrPeerPort, call.Peer)...)
	start := time.Now()
	ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithAttributes(attrs...))
	err := next(ctx, call)
	end := time.Now()
	code := spi.CodeOf(err)
	status := StatusName(code)
	failed := ServerFault(code)
	finish(span, status, failed, err)
	span.End(trace.WithTimestamp(end))
	ins.server.Record(ctx, end.Sub(start).Seconds(), rpcconv.SystemNameAttr(sys), metricAttrs(name, status, failed)...)
	return err
}

// CallRejected implements spi.RejectObserver: a call the server refused
// before its chain is recorded in rpc.server.call.duration with duration
// 0 (it ran no handler; the refusal costs microseconds), its status and,
// for a method the server does not have, rpc.method "_OTHER". It gets no
// span: the refusal happens before the call's trace context is read.
func (f *Filter) CallRejected(r *spi.Rejection) {
	server := f.server.Load()
	if server == nil {
		return
	}
	sys := SystemKite
	if r.Protocol == spi.ProtocolGRPC {
		sys = SystemGRPC
	}
	name := OtherMethod
	if r.Known {
		name, _ = rpcMethod(r.Method)
	}
	code := spi.CodeOf(r.Err)
	server.Record(context.Background(), 0, rpcconv.SystemNameAttr(sys), metricAttrs(name, StatusName(code), ServerFault(code))...)
}

// finish sets the status attributes and, for a failure, the span status:
// Error, described by the error's message (the code is already in
// rpc.response.status_code and error.type).
func finish(span trace.Span, status string, failed bool, err error) {
	span.SetAttributes(AttrStatusCode.String(status))
	if !failed {
		return
	}
	span.SetAttributes(AttrErrorType.String(status))
	msg := err.Error()
	var e *spi.Error
	if errors.As(err, &e) {
		msg = e.Message
	}
	span.SetStatus(codes.Error, msg)
	span.RecordError(err)
}

func metricAttrs(method, status string, failed bool) []attribute.KeyValue {
	if failed {
		return []attribute.KeyValue{AttrMethod.String(method), AttrStatusCode.String(status), AttrErrorType.String(status)}
	}
	return []attribute.KeyValue{AttrMethod.String(method), AttrStatusCode.String(status)}
}

func systemOf(call *spi.Call) string {
	if call.Protocol == spi.ProtocolGRPC {
		return SystemGRPC
	}
	return SystemKite
}

// ServerFault reports whether code, answered by a server, means the server
// failed — the conventions' list for gRPC server spans (UNKNOWN,
// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS),
// which Kite's protocol shares since its codes are gRPC's. Any other code
// is the caller's business: NOT_FOUND, PERMISSION_DENIED, ...
func ServerFault(c spi.Code) bool {
	switch c {
	case spi.Unknown, spi.DeadlineExceeded, spi.Unimplemented, spi.Internal, spi.Unavailable, spi.DataLoss:
		return true
	}
	return false
}

// statusNames are gRPC's canonical status names, which Kite's codes share
// by number: rpc.response.status_code's values on both systems.
var statusNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

// StatusName is the rpc.response.status_code of c: gRPC's name for it
// ("NOT_FOUND"), or its number for a code outside gRPC's range.
func StatusName(c spi.Code) string {
	if int(c) < len(statusNames) {
		return statusNames[c]
	}
	return strconv.Itoa(int(c))
}

// rpcMethod returns the conventions' rpc.method, "pkg.Service/Method",
// and the service, "pkg.Service", of a Kite method name: "pkg.Service.Method"
// splits at its last dot; a gRPC-style "/pkg.Service/Method" is taken as is.
func rpcMethod(full string) (method, service string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full, full[:i]
	}
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[:i] + "/" + full[i+1:], full[:i]
	}
	return full, ""
}

// hostPort splits addr into an address and a port attribute (just the
// address when it has no port, a Unix socket path say).
func hostPort(addrKey, portKey attribute.Key, addr string) []attribute.KeyValue {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []attribute.KeyValue{addrKey.String(addr)}
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return []attribute.KeyValue{addrKey.String(host)}
	}
	return []attribute.KeyValue{addrKey.String(host), portKey.Int(p)}
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
		Doc: "OpenTelemetry RPC spans and rpc.{client,server}.call.duration (semconv " + SemconvVersion + "), joined by W3C trace context in call metadata",
		New: New,
	})
}
