package observability

import (
	"context"
	"strconv"
	"testing"

	tracingfilter "github.com/kiterpc/kite/plugins/filter-tracing"
	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func attr(s tracetest.SpanStub, k attribute.Key) attribute.Value {
	for _, kv := range s.Attributes {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// byKind returns the exported spans named name of kind, in end order.
func byKind(spans tracetest.SpanStubs, name string, kind trace.SpanKind) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name && s.SpanKind == kind {
			out = append(out, s)
		}
	}
	return out
}

func TestTraceContinuesAcrossLoopback(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	old := tracingfilter.TracerProvider
	tracingfilter.TracerProvider = tp // as a program would before building its stack
	t.Cleanup(func() { tracingfilter.TracerProvider = old })
	f := &tracingfilter.Filter{} // picks up the package default

	svc := newEcho()
	addr := start(t, svc, f)
	svc.relay = dial(t, addr, f)
	c := dial(t, addr, f)

	ctx, root := tp.Tracer("test").Start(context.Background(), "checkout")
	var out EchoResp
	require.NoError(t, c.Call(ctx, "Echo.Echo", &EchoReq{Text: "hi"}, &out))
	handlerSpan := <-svc.spans
	root.End()

	spans := exp.GetSpans()
	require.Len(t, spans, 3)
	cli := byKind(spans, "Echo/Echo", trace.SpanKindClient)
	srv := byKind(spans, "Echo/Echo", trace.SpanKindServer)
	require.Len(t, cli, 1)
	require.Len(t, srv, 1)
	traceID := root.SpanContext().TraceID()
	require.Equal(t, traceID, cli[0].SpanContext.TraceID())
	require.Equal(t, traceID, srv[0].SpanContext.TraceID(), "the server continues the client's trace")
	require.Equal(t, cli[0].SpanContext.SpanID(), srv[0].Parent.SpanID(), "the server span's parent is the client span")
	require.True(t, srv[0].Parent.IsRemote())
	require.Equal(t, root.SpanContext().SpanID(), cli[0].Parent.SpanID())
	require.Equal(t, srv[0].SpanContext.SpanID(), handlerSpan.SpanID(), "the handler runs under the server span")
	require.Equal(t, "kite", attr(srv[0], tracingfilter.AttrSystemName).AsString())
	require.Equal(t, "Echo/Echo", attr(srv[0], tracingfilter.AttrMethod).AsString())
	require.Equal(t, "Echo", attr(srv[0], tracingfilter.AttrService).AsString())
	require.Equal(t, "127.0.0.1", attr(srv[0], tracingfilter.AttrPeerAddress).AsString())
	require.Equal(t, "OK", attr(cli[0], tracingfilter.AttrStatusCode).AsString())
	// The client addressed the server it dialled: server.address/port.
	require.Equal(t, addr, attr(cli[0], tracingfilter.AttrServerAddress).AsString()+":"+strconv.FormatInt(attr(cli[0], tracingfilter.AttrServerPort).AsInt64(), 10))
}

func TestTraceFollowsTwoHopsAndErrors(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	f := &tracingfilter.Filter{TracerProvider: tp}

	svc := newEcho()
	addr := start(t, svc, f)
	svc.relay = dial(t, addr, f)
	c := dial(t, addr, f)

	// No span in the caller's context: the client span is the root.
	var out EchoResp
	require.NoError(t, c.Call(context.Background(), "Echo.Relay", &EchoReq{Text: "x"}, &out))
	require.Equal(t, "relayed x", out.Text)
	<-svc.spans
	<-svc.spans

	spans := exp.GetSpans()
	require.Len(t, spans, 4)
	relayCli := byKind(spans, "Echo/Relay", trace.SpanKindClient)[0]
	relaySrv := byKind(spans, "Echo/Relay", trace.SpanKindServer)[0]
	echoCli := byKind(spans, "Echo/Echo", trace.SpanKindClient)[0]
	echoSrv := byKind(spans, "Echo/Echo", trace.SpanKindServer)[0]
	require.False(t, relayCli.Parent.IsValid())
	for _, s := range spans {
		require.Equal(t, relayCli.SpanContext.TraceID(), s.SpanContext.TraceID(), s.Name)
	}
	// client → server → (handler's) client → server: one chain of parents.
	require.Equal(t, relayCli.SpanContext.SpanID(), relaySrv.Parent.SpanID())
	require.Equal(t, relaySrv.SpanContext.SpanID(), echoCli.Parent.SpanID())
	require.Equal(t, echoCli.SpanContext.SpanID(), echoSrv.Parent.SpanID())

	exp.Reset()
	err := c.Call(context.Background(), "Echo.Fail", &EchoReq{Text: "order"}, &EchoResp{})
	require.ErrorIs(t, err, spi.ErrNotFound)
	<-svc.spans
	spans = exp.GetSpans()
	require.Len(t, spans, 2)
	failCli := byKind(spans, "Echo/Fail", trace.SpanKindClient)[0]
	failSrv := byKind(spans, "Echo/Fail", trace.SpanKindServer)[0]
	require.Equal(t, "NOT_FOUND", attr(failCli, tracingfilter.AttrStatusCode).AsString())
	require.Equal(t, "NOT_FOUND", attr(failSrv, tracingfilter.AttrStatusCode).AsString())
	require.Equal(t, "NOT_FOUND", attr(failCli, tracingfilter.AttrErrorType).AsString())
	require.Equal(t, attribute.EMPTY, attr(failSrv, tracingfilter.AttrErrorType).Type(), "no error.type on the server for NOT_FOUND")
	require.Equal(t, codes.Error, failCli.Status.Code)
	require.Equal(t, codes.Unset, failSrv.Status.Code, "a NotFound is not a server fault")
	require.Equal(t, failCli.SpanContext.SpanID(), failSrv.Parent.SpanID())
}
