package tracingfilter

import (
	"context"
	"errors"
	"testing"

	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func recorder(t *testing.T) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return sr, tp
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

// wire simulates the network: the request metadata the client chain
// produced is what the server chain receives, nothing else.
func wire(server spi.Invoker) spi.Invoker {
	return func(ctx context.Context, c *spi.Call) error {
		sc := &spi.Call{Side: spi.ServerSide, Method: c.Method, Peer: "127.0.0.1:40001", Meta: c.Meta.Clone()}
		err := server(context.Background(), sc) // a fresh context: only metadata crosses
		c.Peer = "127.0.0.1:9000"
		return err
	}
}

func TestTraceContinuesFromClientToServer(t *testing.T) {
	sr, tp := recorder(t)
	f := &Filter{TracerProvider: tp}
	var handlerSpan trace.SpanContext
	server := f.Wrap(func(ctx context.Context, c *spi.Call) error {
		handlerSpan = trace.SpanContextFromContext(ctx)
		return nil
	})
	client := f.Wrap(wire(server))

	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	require.NoError(t, client(ctx, &spi.Call{Side: spi.ClientSide, Method: "shop.Users.Get"}))
	parent.End()

	spans := sr.Ended()
	require.Len(t, spans, 3)
	srv, cli, root := spans[0], spans[1], spans[2]
	require.Equal(t, "shop.Users/Get", srv.Name(), "$package.$service/$method")
	require.Equal(t, trace.SpanKindServer, srv.SpanKind())
	require.Equal(t, trace.SpanKindClient, cli.SpanKind())
	require.Equal(t, "request", root.Name())

	traceID := root.SpanContext().TraceID()
	require.Equal(t, traceID, cli.SpanContext().TraceID())
	require.Equal(t, traceID, srv.SpanContext().TraceID())
	require.Equal(t, root.SpanContext().SpanID(), cli.Parent().SpanID())
	require.Equal(t, cli.SpanContext().SpanID(), srv.Parent().SpanID())
	require.True(t, srv.Parent().IsRemote())
	require.Equal(t, srv.SpanContext().SpanID(), handlerSpan.SpanID(), "the handler's context carries the server span")

	require.Equal(t, "shop.Users/Get", cli.Name())
	sa := attrs(srv)
	require.Equal(t, map[attribute.Key]attribute.Value{
		AttrSystemName:  attribute.StringValue("kite"),
		AttrMethod:      attribute.StringValue("shop.Users/Get"),
		AttrStatusCode:  attribute.StringValue("OK"),
		AttrPeerAddress: attribute.StringValue("127.0.0.1"),
		AttrPeerPort:    attribute.IntValue(40001),
		AttrSystem:      attribute.StringValue("kite"),
		AttrService:     attribute.StringValue("shop.Users"),
	}, sa, "a server span has no server.address: the address the client used is not known")
	ca := attrs(cli)
	require.Equal(t, "127.0.0.1", ca[AttrServerAddress].AsString())
	require.Equal(t, int64(9000), ca[AttrServerPort].AsInt64())
	require.Equal(t, "127.0.0.1", ca[AttrPeerAddress].AsString())
	require.Equal(t, int64(9000), ca[AttrPeerPort].AsInt64())
	require.NotContains(t, ca, AttrErrorType, "error.type only when the call failed")
	require.Equal(t, codes.Unset, srv.Status().Code)
}

func TestInjectsIntoMetadata(t *testing.T) {
	_, tp := recorder(t)
	f := &Filter{TracerProvider: tp}
	var seen *spi.Metadata
	inv := f.Wrap(func(ctx context.Context, c *spi.Call) error { seen = c.Meta; return nil })

	// No metadata yet: the filter creates it.
	c := &spi.Call{Side: spi.ClientSide, Method: "Svc.M"}
	require.NoError(t, inv(context.Background(), c))
	require.NotNil(t, seen)
	tp1 := seen.Get(spi.MetaTraceParent)
	require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`, tp1)

	// Existing user metadata is kept; a stale traceparent is replaced.
	md := &spi.Metadata{}
	md.Set("tenant", "acme")
	md.Set(spi.MetaTraceParent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	require.NoError(t, inv(context.Background(), &spi.Call{Side: spi.ClientSide, Method: "Svc.M", Meta: md}))
	require.Equal(t, "acme", md.Get("tenant"))
	require.NotEqual(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", md.Get(spi.MetaTraceParent))
	require.Equal(t, 2, md.Len())
	require.ElementsMatch(t, []string{"tenant", spi.MetaTraceParent}, Carrier(md).Keys())
}

func TestServerWithoutContextStartsRoot(t *testing.T) {
	sr, tp := recorder(t)
	inv := (&Filter{TracerProvider: tp}).Wrap(func(context.Context, *spi.Call) error { return nil })
	require.NoError(t, inv(context.Background(), &spi.Call{Side: spi.ServerSide, Method: "Svc.M"}))
	bad := &spi.Metadata{}
	bad.Set(spi.MetaTraceParent, "garbage")
	require.NoError(t, inv(context.Background(), &spi.Call{Side: spi.ServerSide, Method: "Svc.M", Meta: bad}))
	for _, s := range sr.Ended() {
		require.False(t, s.Parent().IsValid())
		require.True(t, s.SpanContext().IsValid())
	}
}

func TestStatusByCode(t *testing.T) {
	cases := []struct {
		side   spi.Side
		err    error
		status codes.Code
		code   string
	}{
		{spi.ClientSide, spi.Errorf(spi.NotFound, "no user"), codes.Error, "NOT_FOUND"},
		{spi.ClientSide, spi.Errorf(spi.Canceled, "gave up"), codes.Error, "CANCELLED"},
		{spi.ServerSide, spi.Errorf(spi.NotFound, "no user"), codes.Unset, "NOT_FOUND"},
		{spi.ServerSide, spi.Errorf(spi.Unauthenticated, "who"), codes.Unset, "UNAUTHENTICATED"},
		{spi.ServerSide, spi.Errorf(spi.ResourceExhausted, "full"), codes.Unset, "RESOURCE_EXHAUSTED"},
		{spi.ServerSide, spi.Errorf(spi.Internal, "bug"), codes.Error, "INTERNAL"},
		{spi.ServerSide, spi.Errorf(spi.Unimplemented, "no"), codes.Error, "UNIMPLEMENTED"},
		{spi.ServerSide, context.DeadlineExceeded, codes.Error, "DEADLINE_EXCEEDED"},
		{spi.ClientSide, nil, codes.Unset, "OK"},
	}
	for _, tc := range cases {
		sr, tp := recorder(t)
		inv := (&Filter{TracerProvider: tp}).Wrap(func(context.Context, *spi.Call) error { return tc.err })
		err := inv(context.Background(), &spi.Call{Side: tc.side, Method: "Svc.M"})
		require.Equal(t, tc.err, err, "the filter returns the error unchanged")
		s := sr.Ended()[0]
		require.Equal(t, tc.status, s.Status().Code, "%s %v", tc.side, tc.err)
		require.Equal(t, tc.code, attrs(s)[AttrStatusCode].AsString())
		if tc.status == codes.Error {
			require.Len(t, s.Events(), 1, "the error is recorded as an event")
			require.Equal(t, tc.code, attrs(s)[AttrErrorType].AsString())
			var e *spi.Error
			if errors.As(tc.err, &e) {
				require.Equal(t, e.Message, s.Status().Description, "the description is the message, not the code again")
			}
		} else {
			require.NotContains(t, attrs(s), AttrErrorType, "%s %v", tc.side, tc.err)
		}
	}
}

func TestExplicitPropagator(t *testing.T) {
	sr, tp := recorder(t)
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	f := &Filter{TracerProvider: tp, Propagator: prop}
	var gotBaggage string
	server := f.Wrap(func(ctx context.Context, c *spi.Call) error {
		gotBaggage = c.Meta.Get("baggage")
		return nil
	})
	client := f.Wrap(wire(server))
	require.NoError(t, client(context.Background(), &spi.Call{Side: spi.ClientSide, Method: "Svc.M"}))
	require.Empty(t, gotBaggage) // no baggage members set; the key stays absent
	spans := sr.Ended()
	require.Len(t, spans, 2)
	require.Equal(t, spans[1].SpanContext().SpanID(), spans[0].Parent().SpanID())
}

func TestCatalogEntry(t *testing.T) {
	v, err := spi.Default.Build(spi.KindFilter, "tracing", spi.Config(`{}`))
	require.NoError(t, err)
	require.IsType(t, &Filter{}, v)
	_, err = spi.Default.Build(spi.KindFilter, "tracing", spi.Config(`{"sampler":"always"}`))
	require.Error(t, err)
}

func TestRPCMethod(t *testing.T) {
	for in, want := range map[string][2]string{
		"Users.Get":             {"Users/Get", "Users"},
		"shop.v1.Users.Get":     {"shop.v1.Users/Get", "shop.v1.Users"},
		"/eco.v2.Inventory/Get": {"eco.v2.Inventory/Get", "eco.v2.Inventory"},
		"eco.v2.Inventory/Get":  {"eco.v2.Inventory/Get", "eco.v2.Inventory"},
		"bare":                  {"bare", ""},
	} {
		m, s := rpcMethod(in)
		require.Equal(t, want, [2]string{m, s}, in)
	}
}

func BenchmarkClientServer(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	f := &Filter{TracerProvider: tp}
	server := f.Wrap(func(context.Context, *spi.Call) error { return nil })
	client := f.Wrap(func(ctx context.Context, c *spi.Call) error {
		return server(context.Background(), &spi.Call{Side: spi.ServerSide, Method: c.Method, Meta: c.Meta})
	})
	b.ReportAllocs()
	for b.Loop() {
		_ = client(context.Background(), &spi.Call{Side: spi.ClientSide, Method: "Svc.M"})
	}
}
