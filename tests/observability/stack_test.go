package observability

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/stack"
	metricsfilter "github.com/kiterpc/kite/plugins/filter-metrics"
	tracingfilter "github.com/kiterpc/kite/plugins/filter-tracing"
	"github.com/kiterpc/kite/spi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	_ "github.com/kiterpc/kite/plugins/filter-ratelimit"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
	_ "github.com/kiterpc/kite/plugins/registry-local"
)

// The four filters as an operator writes them: one kite.hcl, tokens from
// the environment, a server and three clients with different credentials.
const filtersHCL = `
registry "local" "main" {
  dir           = "{{DIR}}/registry"
  poll_interval = "10ms"
}

filter "metrics" "m" {
  namespace  = "hcl"
  buckets    = [0.001, 0.01, 0.1, 1]
  peer_label = true
}

filter "tracing" "t" {}

filter "ratelimit" "per-caller" {
  rate  = 0.001   # one token per 1000 s: nothing refills during the test
  burst = 30
  per   = "peer"
}

filter "auth" "gate" {
  principals     = { alice = env("ALICE_TOKEN"), ops = env("OPS_TOKEN") }
  public_methods = ["Echo.Ping"]
  methods        = { "Echo.Fail" = ["ops"] }
}

filter "auth" "as-alice" { token = env("KITE_TOKEN") }
filter "auth" "as-ops"   { token = env("OPS_TOKEN") }

server "echo" {
  listen   = "127.0.0.1:0"
  registry = "main"
  filters  = ["m", "t", "per-caller", "gate"]
}

client "alice" {
  service  = "echo"
  registry = "main"
  timeout  = "5s"
  filters  = ["t", "m", "as-alice"]
  retry { max_attempts = 1 }
}

client "ops" {
  service  = "echo"
  registry = "main"
  timeout  = "5s"
  filters  = ["as-ops"]
  retry { max_attempts = 1 }
}

client "anon" {
  service  = "echo"
  registry = "main"
  timeout  = "5s"
  retry { max_attempts = 1 }
}
`

func TestFiltersFromKiteHCL(t *testing.T) {
	t.Setenv("ALICE_TOKEN", "alice-s3cret")
	t.Setenv("KITE_TOKEN", "alice-s3cret\n") // as read from a file: trimmed
	t.Setenv("OPS_TOKEN", "ops-s3cret")

	reg := prometheus.NewRegistry()
	oldReg := metricsfilter.Registerer
	metricsfilter.Registerer = reg
	t.Cleanup(func() { metricsfilter.Registerer = oldReg })
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	oldTP := tracingfilter.TracerProvider
	tracingfilter.TracerProvider = tp
	t.Cleanup(func() { tracingfilter.TracerProvider = oldTP })

	dir := t.TempDir()
	path := filepath.Join(dir, "kite.hcl")
	require.NoError(t, os.WriteFile(path, []byte(strings.ReplaceAll(filtersHCL, "{{DIR}}", dir)), 0o600))
	st, err := stack.Load(path, stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()

	svc := newEcho()
	ctx, stop := context.WithCancel(context.Background())
	ready, served := make(chan spi.Instance, 1), make(chan error, 1)
	go func() {
		served <- st.ServeNotify(ctx, "echo", func(s *core.Server) error { return s.Register("Echo", svc) },
			func(in spi.Instance) { ready <- in })
	}()
	select {
	case <-ready:
	case err := <-served:
		t.Fatalf("serve: %v", err)
	}
	defer func() {
		stop()
		require.NoError(t, <-served)
	}()

	client := func(name string) *core.Client {
		c, err := st.Client(name)
		require.NoError(t, err)
		return c
	}
	alice, ops, anon := client("alice"), client("ops"), client("anon")
	call := func(c *core.Client, method string) (EchoResp, error) {
		var out EchoResp
		err := c.Call(context.Background(), method, &EchoReq{Text: "x"}, &out)
		return out, err
	}

	// Authentication and authorisation, each code over the wire.
	_, err = call(anon, "Echo.Echo")
	require.ErrorIs(t, err, spi.ErrUnauthenticated)
	pong, err := call(anon, "Echo.Ping")
	require.NoError(t, err, "public methods need no token")
	require.Equal(t, "pong", pong.Text)
	out, err := call(alice, "Echo.Echo")
	require.NoError(t, err)
	require.Equal(t, "alice", out.Principal, "the handler sees the principal")
	_, err = call(alice, "Echo.Fail")
	require.ErrorIs(t, err, spi.ErrPermissionDenied)
	require.ErrorContains(t, err, "alice may not call Echo.Fail")
	_, err = call(ops, "Echo.Fail")
	require.ErrorIs(t, err, spi.ErrNotFound, "ops passes the gate and reaches the handler")

	// Rate limit: every call from 127.0.0.1 so far took a token (5 of 30).
	ok := 0
	for {
		_, err = call(alice, "Echo.Echo")
		if err != nil {
			break
		}
		ok++
		require.Less(t, ok, 100, "the rate limit never triggered")
	}
	require.Equal(t, 25, ok)
	require.ErrorIs(t, err, spi.ErrResourceExhausted)
	require.Regexp(t, `rate limit of 0\.001/s \(burst 30\) exceeded for peer 127\.0\.0\.1; retry after 16m[34]\ds`, err.Error())
	_, err = call(anon, "Echo.Ping")
	require.ErrorIs(t, err, spi.ErrResourceExhausted, "the limit is per peer, whichever client")

	// A method the server does not have is refused before the filters
	// (the rate limit is not consulted) and still counted, as _OTHER.
	_, err = call(anon, "Echo.Nope")
	require.ErrorIs(t, err, spi.ErrUnimplemented)

	// Metrics: one registry, client and server filters sharing families.
	admin := httptest.NewServer(metricsfilter.Handler())
	defer admin.Close()
	defer http.DefaultClient.CloseIdleConnections()
	mfs := scrape(t, admin.URL+"/metrics")
	server := func(method, code string) float64 {
		return series(t, mfs, "hcl_rpc_calls_total", map[string]string{"side": "server", "method": method, "code": code, "peer": "127.0.0.1"}).GetCounter().GetValue()
	}
	require.Equal(t, 26.0, server("Echo.Echo", "OK"))
	require.Equal(t, 1.0, server("Echo.Echo", "Unauthenticated"))
	require.Equal(t, 1.0, server("Echo.Echo", "ResourceExhausted"))
	require.Equal(t, 1.0, server("Echo.Ping", "OK"))
	require.Equal(t, 1.0, server("Echo.Ping", "ResourceExhausted"))
	require.Equal(t, 1.0, server("Echo.Fail", "PermissionDenied"))
	require.Equal(t, 1.0, server("Echo.Fail", "NotFound"))
	require.Equal(t, 1.0, server("_OTHER", "Unimplemented"))
	require.Equal(t, 1.0, series(t, mfs, "hcl_rpc_server_rejected_total", map[string]string{"method": "_OTHER", "code": "Unimplemented", "reason": "unknown_method"}).GetCounter().GetValue())
	peer := peerLabel(t, mfs, "hcl_rpc_calls_total", "client")
	clientCalls := func(method, code string) float64 {
		return series(t, mfs, "hcl_rpc_calls_total", map[string]string{"side": "client", "method": method, "code": code, "peer": peer}).GetCounter().GetValue()
	}
	require.Equal(t, 26.0, clientCalls("Echo.Echo", "OK"))
	require.Equal(t, 1.0, clientCalls("Echo.Echo", "ResourceExhausted"))
	require.Equal(t, 1.0, clientCalls("Echo.Fail", "PermissionDenied"))
	h := series(t, mfs, "hcl_rpc_duration_seconds", map[string]string{"side": "server", "method": "Echo.Echo", "peer": "127.0.0.1"}).GetHistogram()
	require.Equal(t, uint64(28), h.GetSampleCount())
	require.Len(t, h.GetBucket(), 5, "the four configured buckets and +Inf")
	for _, m := range mfs["hcl_rpc_in_flight"].GetMetric() {
		require.Zero(t, m.GetGauge().GetValue())
	}

	// Tracing: every server span of an alice call continues its client span.
	spans := exp.GetSpans()
	clientSpans := map[trace.SpanID]bool{}
	for _, s := range spans {
		if s.SpanKind == trace.SpanKindClient {
			clientSpans[s.SpanContext.SpanID()] = true
		}
	}
	require.Len(t, clientSpans, 28, "alice's calls: 26 OK, 1 denied, 1 limited")
	joined := 0
	for _, s := range spans {
		if s.SpanKind == trace.SpanKindServer && clientSpans[s.Parent.SpanID()] {
			joined++
		}
	}
	require.Equal(t, 28, joined)
	// Server spans: 5 calls before the loop, 26 in it, the refused Ping.
	require.Equal(t, 28+32, len(spans), "a server span for every call that reached the server")
}
