package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core/admin"
	"github.com/kiterpc/kite/core/health"
	"github.com/kiterpc/kite/core/stack"
	metricsfilter "github.com/kiterpc/kite/plugins/filter-metrics"
	"github.com/kiterpc/kite/spi"
)

const adminStack = `
admin { listen = "127.0.0.1:0" }

registry "local" "main" {
  dir           = "{{DIR}}/registry"
  poll_interval = "10ms"
}

server "echo" {
  listen           = "127.0.0.1:0"
  registry         = "main"
  version          = "v1"
  filters          = ["metrics"]
  shutdown_timeout = "10s"
}

client "echo" {
  registry = "main"
  filters  = ["metrics"]
  timeout  = "5s"
}
`

// freshMetrics points the metrics filter at a registry of the test's own,
// so counts start from zero whatever ran before.
func freshMetrics(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	prev := metricsfilter.Registerer
	metricsfilter.Registerer = reg
	t.Cleanup(func() { metricsfilter.Registerer = prev })
	return reg
}

// scrape fetches /metrics through the admin listener and parses it.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, "http://"+addr+"/metrics")
	require.Equal(t, 200, code, body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	return fams
}

// counter returns the value of family's series with exactly labels.
func counter(fams map[string]*dto.MetricFamily, family string, labels map[string]string) (float64, bool) {
	f := fams[family]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, lp := range m.GetLabel() {
			if labels[lp.GetName()] != lp.GetValue() {
				continue next
			}
		}
		return m.GetCounter().GetValue(), true
	}
	return 0, false
}

func TestAdminMetricsCountCalls(t *testing.T) {
	reg := freshMetrics(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "kite.hcl", hcl(adminStack, "{{DIR}}", dir))
	s := serve(t, path, "echo", &echo{name: "a"}, stack.WithMetricsGatherer(reg))
	addr := s.st.AdminAddr()
	require.NotEmpty(t, addr, "Serve starts the admin listener of the admin block")

	c, err := s.st.Client("echo")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const ok, failed = 25, 7
	for i := range ok {
		var r EchoResp
		require.NoError(t, c.Call(ctx, "Echo.Echo", &EchoReq{Text: fmt.Sprint(i)}, &r))
	}
	for range failed {
		var r EchoResp
		err := c.Call(ctx, "Echo.Fail", &EchoReq{Text: "x"}, &r)
		require.True(t, errors.Is(err, spi.ErrNotFound), "%v", err)
	}
	// Health checks are calls too, counted under their own method.
	st, err := health.Check(ctx, c, "Echo")
	require.NoError(t, err)
	assert.Equal(t, health.Serving, st)

	fams := scrape(t, addr)
	want := []struct {
		side, method, code string
		n                  float64
	}{
		{"server", "Echo.Echo", "OK", ok},
		{"client", "Echo.Echo", "OK", ok},
		{"server", "Echo.Fail", "NotFound", failed},
		{"client", "Echo.Fail", "NotFound", failed},
		{"server", "Health.Check", "OK", 1},
		{"client", "Health.Check", "OK", 1},
	}
	for _, w := range want {
		v, found := counter(fams, "kite_rpc_calls_total", map[string]string{"side": w.side, "method": w.method, "code": w.code})
		if assert.True(t, found, "series kite_rpc_calls_total{side=%q,method=%q,code=%q}", w.side, w.method, w.code) {
			assert.Equal(t, w.n, v, "kite_rpc_calls_total{side=%q,method=%q,code=%q}", w.side, w.method, w.code)
		}
	}
	_, found := counter(fams, "kite_rpc_calls_total", map[string]string{"side": "server", "method": "Echo.Echo", "code": "NotFound"})
	assert.False(t, found, "no series for a code that never happened")
	// The latency histogram counted every server call.
	for _, m := range fams["kite_rpc_duration_seconds"].GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		if labels["side"] == "server" && labels["method"] == "Echo.Echo" {
			assert.EqualValues(t, ok, m.GetHistogram().GetSampleCount())
		}
	}
	// Nothing in flight once the calls returned.
	fam := fams["kite_rpc_in_flight"]
	require.NotNil(t, fam)
	for _, m := range fam.GetMetric() {
		assert.Zero(t, m.GetGauge().GetValue())
	}
}

func TestHealthzFlipsWhenShutdownStarts(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "kite.hcl", hcl(adminStack, "{{DIR}}", dir))
	svc := &echo{name: "a", hold: make(chan struct{}), entered: make(chan struct{}, 1)}
	s := serve(t, path, "echo", svc)
	base := "http://" + s.st.AdminAddr()

	code, body := httpGet(t, base+"/healthz")
	require.Equal(t, 200, code, body)
	var hb admin.HealthBody
	require.NoError(t, json.Unmarshal([]byte(body), &hb))
	assert.Equal(t, "SERVING", hb.Status)
	require.Len(t, hb.Servers, 1)
	assert.Equal(t, admin.ServerHealth{Name: "echo", State: "serving", Status: "SERVING", Services: map[string]string{"Echo": "SERVING"}}, hb.Servers[0])

	// A call in flight holds the drain open, so the shutdown can be seen
	// while it is in progress.
	c, err := s.st.Client("echo")
	require.NoError(t, err)
	callDone := make(chan error, 1)
	go func() {
		var r EchoResp
		callDone <- c.Call(context.Background(), "Echo.Slow", &EchoReq{Text: "held"}, &r)
	}()
	select {
	case <-svc.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the held call never reached the handler")
	}
	started := time.Now()
	s.cancel() // shutdown starts

	var flipped time.Duration
	waitFor(t, "/healthz to answer 503", 5*time.Second, func() bool {
		code, body = httpGet(t, base+"/healthz")
		flipped = time.Since(started)
		return code == 503
	})
	require.NoError(t, json.Unmarshal([]byte(body), &hb))
	assert.Equal(t, "NOT_SERVING", hb.Status)
	assert.Equal(t, "NOT_SERVING", hb.Servers[0].Status)
	assert.Equal(t, "NOT_SERVING", hb.Servers[0].Services["Echo"])
	assert.Equal(t, "draining", hb.Servers[0].State, "503 while the call in flight still drains")
	t.Logf("/healthz answered 503 %s after the shutdown started, with a call still in flight", flipped.Round(time.Microsecond))

	close(svc.hold)
	require.NoError(t, <-callDone, "the call in flight finishes during the drain")
	select {
	case err := <-s.done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	s.done <- nil // for the cleanup
	code, body = httpGet(t, base+"/healthz")
	assert.Equal(t, 503, code, "a stopped server keeps the process unhealthy")
	require.NoError(t, json.Unmarshal([]byte(body), &hb))
	assert.Equal(t, "stopped", hb.Servers[0].State)
}
