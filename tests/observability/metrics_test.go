package observability

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	metricsfilter "github.com/kiterpc/kite/plugins/filter-metrics"
	"github.com/kiterpc/kite/spi"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// scrape GETs /metrics from a real HTTP listener and parses the text.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err)
	return mfs
}

// series finds the metric of family whose labels are exactly want.
func series(t *testing.T, mfs map[string]*dto.MetricFamily, family string, want map[string]string) *dto.Metric {
	t.Helper()
	mf, ok := mfs[family]
	require.True(t, ok, "no family %s", family)
next:
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if want[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no series %s%v", family, want)
	return nil
}

func TestMetricsScrapedAfterLoopbackCalls(t *testing.T) {
	reg := prometheus.NewRegistry()
	old := metricsfilter.Registerer
	metricsfilter.Registerer = reg
	t.Cleanup(func() { metricsfilter.Registerer = old })

	// Two filters, one per side, sharing the registry's collectors.
	srvMetrics, err := metricsfilter.NewFilter(metricsfilter.Options{PeerLabel: true})
	require.NoError(t, err)
	cliMetrics, err := metricsfilter.NewFilter(metricsfilter.Options{PeerLabel: true})
	require.NoError(t, err)

	svc := newEcho()
	addr := start(t, svc, srvMetrics)
	c := dial(t, addr, cliMetrics)
	ctx := context.Background()
	for range 5 {
		var out EchoResp
		require.NoError(t, c.Call(ctx, "Echo.Echo", &EchoReq{Text: "hi"}, &out))
	}
	for range 2 {
		err := c.Call(ctx, "Echo.Fail", &EchoReq{Text: "thing"}, &EchoResp{})
		require.ErrorIs(t, err, spi.ErrNotFound)
	}
	err = c.Call(ctx, "Echo.Nope", &EchoReq{}, &EchoResp{})
	require.ErrorIs(t, err, spi.ErrUnimplemented)

	admin := httptest.NewServer(metricsfilter.Handler())
	defer admin.Close()
	defer http.DefaultClient.CloseIdleConnections()
	mfs := scrape(t, admin.URL+"/metrics")

	calls := func(side, method, code, peer string) float64 {
		return series(t, mfs, "kite_rpc_calls_total", map[string]string{"side": side, "method": method, "code": code, "peer": peer}).GetCounter().GetValue()
	}
	// The server sees the caller's host; the client's peer is whatever the
	// runtime reports for the instance it called (empty when it reports none).
	clientPeer := peerLabel(t, mfs, "kite_rpc_calls_total", "client")
	require.Equal(t, 5.0, calls("server", "Echo.Echo", "OK", "127.0.0.1"))
	require.Equal(t, 2.0, calls("server", "Echo.Fail", "NotFound", "127.0.0.1"))
	require.Equal(t, 5.0, calls("client", "Echo.Echo", "OK", clientPeer))
	require.Equal(t, 2.0, calls("client", "Echo.Fail", "NotFound", clientPeer))
	require.Equal(t, 1.0, calls("client", "Echo.Nope", "Unimplemented", clientPeer))

	h := series(t, mfs, "kite_rpc_duration_seconds", map[string]string{"side": "server", "method": "Echo.Echo", "peer": "127.0.0.1"}).GetHistogram()
	require.Equal(t, uint64(5), h.GetSampleCount())
	require.Len(t, h.GetBucket(), len(metricsfilter.DefaultBuckets)+1, "the default buckets and +Inf")
	le10 := h.GetBucket()[len(metricsfilter.DefaultBuckets)-1]
	require.Equal(t, 10.0, le10.GetUpperBound())
	require.Equal(t, uint64(5), le10.GetCumulativeCount(), "every loopback call is under 10 s")
	h = series(t, mfs, "kite_rpc_duration_seconds", map[string]string{"side": "client", "method": "Echo.Fail", "peer": clientPeer}).GetHistogram()
	require.Equal(t, uint64(2), h.GetSampleCount())

	for _, m := range mfs["kite_rpc_in_flight"].GetMetric() {
		require.Zero(t, m.GetGauge().GetValue())
	}
	require.Len(t, mfs["kite_rpc_in_flight"].GetMetric(), 5, "server Echo/Fail, client Echo/Fail/Nope")
	t.Logf("client peer label as reported by the runtime: %q", clientPeer)
}

// peerLabel returns the peer label value of the first series of side.
func peerLabel(t *testing.T, mfs map[string]*dto.MetricFamily, family, side string) string {
	t.Helper()
	for _, m := range mfs[family].GetMetric() {
		ls := map[string]string{}
		for _, l := range m.GetLabel() {
			ls[l.GetName()] = l.GetValue()
		}
		if ls["side"] == side {
			return ls["peer"]
		}
	}
	t.Fatalf("no %s series", side)
	return ""
}
