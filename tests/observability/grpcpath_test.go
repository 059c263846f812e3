package observability

import (
	"context"
	"testing"
	"time"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	codecproto "github.com/kiterpc/kite/plugins/codec-proto"
	metricsfilter "github.com/kiterpc/kite/plugins/filter-metrics"
	tracingfilter "github.com/kiterpc/kite/plugins/filter-tracing"
	"github.com/kiterpc/kite/spi"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

type hello struct {
	greeterpb.UnimplementedGreeterServer
}

func (hello) SayHello(_ context.Context, r *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	if r.GetName() == "" {
		return nil, spi.Errorf(spi.InvalidArgument, "a name is required")
	}
	return &greeterpb.HelloReply{Message: "Hello, " + r.GetName()}, nil
}

// TestGRPCPathTracedAndCountedAsGRPC: a real grpc-go client calls a Kite
// server on its gRPC path. The server span is named
// kite.examples.greeter.Greeter/SayHello with rpc.system.name "grpc";
// rpc.server.call.duration (read back through the OpenTelemetry SDK) and
// kite_rpc_calls_total count the calls, and a call to a method the server
// does not have — refused before the filters — is in both, as _OTHER.
func TestGRPCPathTracedAndCountedAsGRPC(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	reg := prometheus.NewRegistry()
	mf, err := metricsfilter.NewFilter(metricsfilter.Options{Registerer: reg})
	require.NoError(t, err)
	tf := &tracingfilter.Filter{TracerProvider: tp, MeterProvider: mp}

	srv, err := core.NewServer(core.ServerOptions{Filters: []spi.Filter{tf, mf}, Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, srv.EnableGRPC(core.GRPCOptions{}))
	require.NoError(t, greeterpb.RegisterGreeterServer(srv, hello{}))
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	cc, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := &greeterpb.HelloReply{}
	require.NoError(t, cc.Invoke(ctx, "/kite.examples.greeter.Greeter/SayHello", &greeterpb.HelloRequest{Name: "otel"}, out))
	require.Equal(t, "Hello, otel", out.GetMessage())
	err = cc.Invoke(ctx, "/kite.examples.greeter.Greeter/SayHello", &greeterpb.HelloRequest{}, out)
	require.Equal(t, grpccodes.InvalidArgument, status.Code(err))
	err = cc.Invoke(ctx, "/kite.examples.greeter.Nope/SayHello", &greeterpb.HelloRequest{Name: "x"}, out)
	require.Equal(t, grpccodes.Unimplemented, status.Code(err))

	// A Kite client on GRPCTransport speaks gRPC too: its span says so.
	kc, err := core.NewClient(core.ClientOptions{Targets: []string{ln.Addr().String()}, Logger: quiet,
		Transport: &core.GRPCTransport{}, Codec: codecproto.New(), Filters: []spi.Filter{tf}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = kc.Close() })
	reply, err := greeterpb.NewGreeterClient(kc).SayHello(ctx, &greeterpb.HelloRequest{Name: "kite"})
	require.NoError(t, err)
	require.Equal(t, "Hello, kite", reply.GetMessage())
	cli := byKind(exp.GetSpans(), "kite.examples.greeter.Greeter/SayHello", trace.SpanKindClient)
	require.Len(t, cli, 1)
	require.Equal(t, "grpc", attr(cli[0], tracingfilter.AttrSystemName).AsString())

	spans := byKind(exp.GetSpans(), "kite.examples.greeter.Greeter/SayHello", trace.SpanKindServer)
	require.Len(t, spans, 3, "one server span per call that reached the chain")
	for _, s := range spans {
		require.Equal(t, "grpc", attr(s, tracingfilter.AttrSystemName).AsString())
		require.Equal(t, "kite.examples.greeter.Greeter/SayHello", attr(s, tracingfilter.AttrMethod).AsString())
		require.Equal(t, "kite.examples.greeter.Greeter", attr(s, tracingfilter.AttrService).AsString())
		require.Equal(t, "127.0.0.1", attr(s, tracingfilter.AttrPeerAddress).AsString())
		require.Equal(t, codes.Unset, s.Status.Code, "OK and INVALID_ARGUMENT are no server faults")
	}
	require.Equal(t, "INVALID_ARGUMENT", attr(spans[1], tracingfilter.AttrStatusCode).AsString())

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	counts := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "rpc.server.call.duration" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				sys, _ := dp.Attributes.Value(tracingfilter.AttrSystemName)
				meth, _ := dp.Attributes.Value(tracingfilter.AttrMethod)
				code, _ := dp.Attributes.Value(tracingfilter.AttrStatusCode)
				counts[sys.AsString()+" "+meth.AsString()+" "+code.AsString()] += dp.Count
			}
		}
	}
	require.Equal(t, map[string]uint64{
		"grpc kite.examples.greeter.Greeter/SayHello OK":               2,
		"grpc kite.examples.greeter.Greeter/SayHello INVALID_ARGUMENT": 1,
		"grpc _OTHER UNIMPLEMENTED":                                    1,
	}, counts)

	require.Equal(t, 1.0, callsTotal(t, reg, "server", "_OTHER", "Unimplemented"))
	require.Equal(t, 2.0, callsTotal(t, reg, "server", "kite.examples.greeter.Greeter.SayHello", "OK"))
	require.Equal(t, 1.0, callsTotal(t, reg, "server", "kite.examples.greeter.Greeter.SayHello", "InvalidArgument"))
}

// callsTotal reads kite_rpc_calls_total{side,method,code} from reg.
func callsTotal(t *testing.T, reg *prometheus.Registry, side, method, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	return series(t, map[string]*dto.MetricFamily{"kite_rpc_calls_total": findFamily(mfs, "kite_rpc_calls_total")},
		"kite_rpc_calls_total", map[string]string{"side": side, "method": method, "code": code}).GetCounter().GetValue()
}

func findFamily(mfs []*dto.MetricFamily, name string) *dto.MetricFamily {
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}
