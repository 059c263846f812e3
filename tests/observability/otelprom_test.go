package observability

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/kiterpc/kite/internal/testkit"
	metricsfilter "github.com/kiterpc/kite/plugins/filter-metrics"
	tracingfilter "github.com/kiterpc/kite/plugins/filter-tracing"
	"github.com/kiterpc/kite/spi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TestOTelMetricsNextToKiteSeries: with OpenTelemetry's Prometheus
// exporter writing into the same registry, one /metrics shows the
// metrics filter's kite_rpc_* and the tracing filter's
// rpc.server.call.duration / rpc.client.call.duration (as
// rpc_{server,client}_call_duration_seconds), and the real promtool
// accepts the whole exposition.
func TestOTelMetricsNextToKiteSeries(t *testing.T) {
	promtool := testkit.Tool(t, "promtool", promtoolHint)
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	require.NoError(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	mf, err := metricsfilter.NewFilter(metricsfilter.Options{Registerer: reg})
	require.NoError(t, err)
	tf := &tracingfilter.Filter{TracerProvider: tp, MeterProvider: mp}

	svc := newEcho()
	addr := start(t, svc, tf, mf)
	c := dial(t, addr, tf, mf)
	ctx := context.Background()
	require.NoError(t, c.Call(ctx, "Echo.Ping", &EchoReq{}, &EchoResp{}))
	require.ErrorIs(t, c.Call(ctx, "Echo.Fail", &EchoReq{Text: "x"}, &EchoResp{}), spi.ErrNotFound)
	<-svc.spans
	require.ErrorIs(t, c.Call(ctx, "Echo.Nope", &EchoReq{}, &EchoResp{}), spi.ErrUnimplemented)

	hs := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer hs.Close()
	defer http.DefaultClient.CloseIdleConnections()
	resp, err := http.Get(hs.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	body := string(b)

	require.Contains(t, body, `kite_rpc_calls_total{code="NotFound",method="Echo.Fail",side="server"} 1`)
	for _, want := range []string{
		"# TYPE rpc_server_call_duration_seconds histogram",
		"# TYPE rpc_client_call_duration_seconds histogram",
		`rpc_method="Echo/Ping"`,
		`rpc_response_status_code="NOT_FOUND"`,
		`rpc_method="_OTHER"`,
		`rpc_system_name="kite"`,
	} {
		require.Contains(t, body, want)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s\non:\n%s", out, body)
}
