package tracingfilter

import (
	"context"
	"testing"

	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	semconv137 "go.opentelemetry.io/otel/semconv/v1.37.0"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/rpcconv"
	"go.opentelemetry.io/otel/trace"
)

// TestAttributeKeysAreTheConventions: every key the filter sets is the
// one OpenTelemetry's own generated semconv package defines, the current
// ones from semconv/v1.43.0 (RPC as in v1.44.0) and the two legacy ones
// from v1.37.0.
func TestAttributeKeysAreTheConventions(t *testing.T) {
	for ours, theirs := range map[attribute.Key]attribute.Key{
		AttrSystemName:     semconv.RPCSystemNameKey,
		AttrMethod:         semconv.RPCMethodKey,
		AttrMethodOriginal: semconv.RPCMethodOriginalKey,
		AttrStatusCode:     semconv.RPCResponseStatusCodeKey,
		AttrErrorType:      semconv.ErrorTypeKey,
		AttrServerAddress:  semconv.ServerAddressKey,
		AttrServerPort:     semconv.ServerPortKey,
		AttrPeerAddress:    semconv.NetworkPeerAddressKey,
		AttrPeerPort:       semconv.NetworkPeerPortKey,
		AttrSystem:         semconv137.RPCSystemKey,
		AttrService:        semconv137.RPCServiceKey,
	} {
		require.Equal(t, theirs, ours)
	}
	require.Equal(t, string(semconv.RPCSystemNameGRPC.Value.AsString()), SystemGRPC)
	require.Equal(t, "https://opentelemetry.io/schemas/1.43.0", semconv.SchemaURL, "bump SemconvVersion's note when the Go module ships a newer semconv")
}

func metricsRecorder(t *testing.T) (*sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return r, mp
}

// histograms collects the reader's float64 histograms by name.
func histograms(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, InstrumentationName, sm.Scope.Name)
		require.Equal(t, "https://opentelemetry.io/schemas/"+SemconvVersion, sm.Scope.SchemaURL)
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// point finds the data point whose attributes are exactly want.
func point(t *testing.T, m metricdata.Metrics, want ...attribute.KeyValue) metricdata.HistogramDataPoint[float64] {
	t.Helper()
	h, ok := m.Data.(metricdata.Histogram[float64])
	require.True(t, ok, "%s is a %T", m.Name, m.Data)
	set := attribute.NewSet(want...)
	for _, dp := range h.DataPoints {
		if dp.Attributes.Equals(&set) {
			return dp
		}
	}
	var have []string
	for _, dp := range h.DataPoints {
		have = append(have, dp.Attributes.Encoded(attribute.DefaultEncoder()))
	}
	t.Fatalf("%s: no point %v; have %v", m.Name, set.Encoded(attribute.DefaultEncoder()), have)
	return metricdata.HistogramDataPoint[float64]{}
}

// TestRPCMetricsFollowTheConventions records calls through the real
// OpenTelemetry metrics SDK and reads rpc.server.call.duration and
// rpc.client.call.duration back: names, unit, the conventions' buckets,
// and the attributes (error.type on the client for any failure, on the
// server only for server faults; gRPC as the system for the gRPC path;
// _OTHER for a method the server does not have).
func TestRPCMetricsFollowTheConventions(t *testing.T) {
	r, mp := metricsRecorder(t)
	_, tp := recorder(t)
	f := &Filter{TracerProvider: tp, MeterProvider: mp}
	var answer error
	server := f.Wrap(func(context.Context, *spi.Call) error { return answer })
	client := f.Wrap(func(ctx context.Context, c *spi.Call) error {
		c.Peer = "10.0.0.7:9000"
		return server(ctx, &spi.Call{Side: spi.ServerSide, Method: c.Method, Peer: "10.0.0.9:5000", Meta: c.Meta})
	})
	ctx := context.Background()
	for range 3 {
		require.NoError(t, client(ctx, &spi.Call{Side: spi.ClientSide, Method: "eco.v1.Inventory.Get"}))
	}
	answer = spi.Errorf(spi.NotFound, "no item")
	require.Error(t, client(ctx, &spi.Call{Side: spi.ClientSide, Method: "eco.v1.Inventory.Get"}))
	answer = spi.Errorf(spi.Unavailable, "db down")
	require.Error(t, server(ctx, &spi.Call{Side: spi.ServerSide, Method: "eco.v1.Inventory.Get", Protocol: spi.ProtocolGRPC}))
	f.CallRejected(&spi.Rejection{Method: "eco.v1.Inventory.Nope", Reason: spi.ReasonUnknownMethod, Err: spi.Errorf(spi.Unimplemented, "no")})

	ms := histograms(t, r)
	srv, cli := ms["rpc.server.call.duration"], ms["rpc.client.call.duration"]
	require.Equal(t, "s", srv.Unit)
	require.Equal(t, "s", cli.Unit)
	require.Equal(t, rpcconv.ServerCallDuration{}.Description(), srv.Description)
	const method = "eco.v1.Inventory/Get"
	ok := point(t, srv, AttrSystemName.String("kite"), AttrMethod.String(method), AttrStatusCode.String("OK"))
	require.Equal(t, uint64(3), ok.Count)
	require.Equal(t, []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}, ok.Bounds, "the conventions' advised buckets")
	require.Equal(t, uint64(3), point(t, cli, AttrSystemName.String("kite"), AttrMethod.String(method), AttrStatusCode.String("OK")).Count)
	require.Equal(t, uint64(1), point(t, srv, AttrSystemName.String("kite"), AttrMethod.String(method), AttrStatusCode.String("NOT_FOUND")).Count,
		"a NOT_FOUND answer is no server error: no error.type")
	require.Equal(t, uint64(1), point(t, cli, AttrSystemName.String("kite"), AttrMethod.String(method), AttrStatusCode.String("NOT_FOUND"), AttrErrorType.String("NOT_FOUND")).Count)
	require.Equal(t, uint64(1), point(t, srv, AttrSystemName.String("grpc"), AttrMethod.String(method), AttrStatusCode.String("UNAVAILABLE"), AttrErrorType.String("UNAVAILABLE")).Count)
	rej := point(t, srv, AttrSystemName.String("kite"), AttrMethod.String(OtherMethod), AttrStatusCode.String("UNIMPLEMENTED"), AttrErrorType.String("UNIMPLEMENTED"))
	require.Equal(t, uint64(1), rej.Count)
	require.Zero(t, rej.Sum)
}

// TestSpanAndMetricDurationsAgree: the conventions ask that the duration
// metric equal the span's duration; both come from the same two
// timestamps.
func TestSpanAndMetricDurationsAgree(t *testing.T) {
	r, mp := metricsRecorder(t)
	sr, tp := recorder(t)
	f := &Filter{TracerProvider: tp, MeterProvider: mp}
	inv := f.Wrap(func(context.Context, *spi.Call) error { return nil })
	require.NoError(t, inv(context.Background(), &spi.Call{Side: spi.ServerSide, Method: "Svc.M", Protocol: spi.ProtocolGRPC}))
	s := sr.Ended()[0]
	require.Equal(t, trace.SpanKindServer, s.SpanKind())
	require.Equal(t, "grpc", attrs(s)[AttrSystemName].AsString())
	dp := point(t, histograms(t, r)["rpc.server.call.duration"], AttrSystemName.String("grpc"), AttrMethod.String("Svc/M"), AttrStatusCode.String("OK"))
	require.Equal(t, s.EndTime().Sub(s.StartTime()).Seconds(), dp.Sum)
}
