package tracingfilter_test

import (
	"context"
	"fmt"

	tracingfilter "github.com/kiterpc/kite/plugins/filter-tracing"
	"github.com/kiterpc/kite/spi"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A client span's context travels in the call metadata and the server's
// span continues the same trace.
func ExampleFilter() {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	f := &tracingfilter.Filter{TracerProvider: tp}

	server := f.Wrap(func(ctx context.Context, c *spi.Call) error { return nil })
	client := f.Wrap(func(ctx context.Context, c *spi.Call) error {
		fmt.Println("traceparent sent:", c.Meta.Get(spi.MetaTraceParent) != "")
		// What a real client would put on the wire, a real server decodes.
		return server(context.Background(), &spi.Call{Side: spi.ServerSide, Method: c.Method, Meta: c.Meta.Clone()})
	})
	_ = client(context.Background(), &spi.Call{Side: spi.ClientSide, Method: "Users.Get"})

	spans := exp.GetSpans()
	srv, cli := spans[0], spans[1]
	fmt.Println(srv.Name, srv.SpanKind, "child of", cli.SpanKind)
	fmt.Println("same trace:", srv.SpanContext.TraceID() == cli.SpanContext.TraceID())
	fmt.Println("parent is client span:", srv.Parent.SpanID() == cli.SpanContext.SpanID())
	// Output:
	// traceparent sent: true
	// Users/Get server child of client
	// same trace: true
	// parent is client span: true
}
