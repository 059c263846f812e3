package observability

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/internal/testkit"
	metricsfilter "github.com/kiterpc/kite/plugins/filter-metrics"
	tracingfilter "github.com/kiterpc/kite/plugins/filter-tracing"
	"github.com/kiterpc/kite/spi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

const promtoolHint = "bash scripts/ensure-prometheus.sh (Debian prometheus)"

// gate is a service with a method that holds its slot until released,
// to fill a server's max_concurrency.
type gate struct {
	held    chan struct{}
	release chan struct{}
}

func (g *gate) Echo(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	return &EchoResp{Text: r.Text}, nil
}

func (g *gate) Fail(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	return nil, spi.Errorf(spi.NotFound, "no %s", r.Text)
}

func (g *gate) Hold(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	g.held <- struct{}{}
	<-g.release
	return &EchoResp{}, nil
}

// scrapeBusyServer runs a real server and client with the metrics filter
// (peer label on) and the tracing filter (its OpenTelemetry metrics
// exported into the same registry by OpenTelemetry's Prometheus
// exporter), makes calls that succeed, fail, and are refused before the
// chain (an unknown method, max_concurrency), and returns what a scraper
// reads from /metrics over HTTP.
func scrapeBusyServer(t *testing.T) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	mf, err := metricsfilter.NewFilter(metricsfilter.Options{Registerer: reg, PeerLabel: true, MaxPeers: 8})
	require.NoError(t, err)
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	require.NoError(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	tf := &tracingfilter.Filter{TracerProvider: tracenoop.NewTracerProvider(), MeterProvider: mp}
	srv, err := core.NewServer(core.ServerOptions{Filters: []spi.Filter{tf, mf}, Logger: quiet, MaxConcurrency: 1})
	require.NoError(t, err)
	g := &gate{held: make(chan struct{}, 1), release: make(chan struct{})}
	require.NoError(t, srv.Register("Gate", g))
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	c := dial(t, ln.Addr().String(), tf, mf)

	ctx := context.Background()
	// max_concurrency 1: a call's slot is given back just after its
	// answer is written, so each call waits for the last one's.
	settle := func() {
		require.Eventually(t, func() bool { return srv.InFlight() == 0 }, 5*time.Second, time.Millisecond)
	}
	for range 3 {
		require.NoError(t, c.Call(ctx, "Gate.Echo", &EchoReq{Text: "x"}, &EchoResp{}))
		settle()
	}
	require.ErrorIs(t, c.Call(ctx, "Gate.Fail", &EchoReq{Text: "x"}, &EchoResp{}), spi.ErrNotFound)
	settle()
	require.ErrorIs(t, c.Call(ctx, "Gate.Nope", &EchoReq{}, &EchoResp{}), spi.ErrUnimplemented)
	held := c.Go(ctx, "Gate.Hold", &EchoReq{}, &EchoResp{})
	select {
	case <-g.held:
	case <-time.After(5 * time.Second):
		t.Fatal("Hold did not start")
	}
	require.ErrorIs(t, c.Call(ctx, "Gate.Echo", &EchoReq{}, &EchoResp{}), spi.ErrResourceExhausted)
	close(g.release)
	require.NoError(t, held.Wait())
	settle()

	hs := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer hs.Close()
	defer http.DefaultClient.CloseIdleConnections()
	resp, err := http.Get(hs.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// TestPromtoolChecksExposition: the real promtool (Prometheus's own
// linter) accepts what a busy server exposes, rejected calls included.
func TestPromtoolChecksExposition(t *testing.T) {
	promtool := testkit.Tool(t, "promtool", promtoolHint)
	body := scrapeBusyServer(t)
	require.Contains(t, body, `kite_rpc_server_rejected_total{code="Unimplemented",method="_OTHER",reason="unknown_method"} 1`)
	require.Contains(t, body, `kite_rpc_server_rejected_total{code="ResourceExhausted",method="Gate.Echo",reason="concurrency"} 1`)
	require.Contains(t, body, `kite_rpc_calls_total{code="ResourceExhausted",method="Gate.Echo",peer="127.0.0.1",side="server"} 1`)

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s\non:\n%s", out, body)
	// A known-bad exposition fails, so a pass above means something.
	bad := exec.Command(promtool, "check", "metrics")
	bad.Stdin = strings.NewReader("# HELP kite_rpc_calls counter without _total\n# TYPE kite_rpc_calls counter\nkite_rpc_calls 1\n")
	out, err = bad.CombinedOutput()
	require.Error(t, err, "promtool accepted a counter without _total: %s", out)
}

// exposed maps every series name a scrape shows (a histogram's _bucket,
// _sum and _count) to its label names.
func exposed(t *testing.T, body string) map[string]map[string]bool {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	out := map[string]map[string]bool{}
	add := func(name string, m *dto.Metric, extra ...string) {
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for _, l := range m.GetLabel() {
			out[name][l.GetName()] = true
		}
		for _, l := range extra {
			out[name][l] = true
		}
	}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetType() == dto.MetricType_HISTOGRAM {
				add(name+"_bucket", m, "le")
				add(name+"_sum", m)
				add(name+"_count", m)
				continue
			}
			add(name, m)
		}
	}
	return out
}

type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

var (
	// Kite's series names (kite_*, and rpc_* from the OpenTelemetry
	// metrics), with the label matchers that follow them.
	selectorRE = regexp.MustCompile(`\b((?:kite|rpc)_[a-zA-Z0-9_:]*)\s*(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	groupingRE = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	// Grafana's variables, replaced by what they stand for at query time.
	grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", ".*", "$method", ".*")
)

// TestGrafanaDashboardMatchesExposedSeries loads the shipped dashboard,
// has promtool parse every PromQL expression in it (as recording rules),
// and checks every kite_ series it reads, every label it matches on and
// every label it groups by against what a running server exposes — so a
// renamed metric or label breaks this test, not an operator's dashboard.
func TestGrafanaDashboardMatchesExposedSeries(t *testing.T) {
	promtool := testkit.Tool(t, "promtool", promtoolHint)
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "grafana", "kite-dashboard.json"))
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(raw, &d))
	series := exposed(t, scrapeBusyServer(t))

	var exprs []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, grafanaVars.Replace(tg.Expr))
		}
	}
	require.GreaterOrEqual(t, len(exprs), 10)
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for i, e := range exprs {
		rules = append(rules, rule{Record: "kite:dashboard_expr_" + strconv.Itoa(i), Expr: e})
	}
	file := map[string]any{"groups": []any{map[string]any{"name": "kite-dashboard", "rules": rules}}}
	b, err := json.MarshalIndent(file, "", "  ") // YAML is a superset of JSON
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	require.NoError(t, err, "promtool check rules on the dashboard's PromQL:\n%s\n%s", out, b)
	require.Contains(t, string(out), "SUCCESS: "+strconv.Itoa(len(rules))+" rules found")

	// Every kite_ name and label the dashboard uses exists.
	used := map[string]bool{}
	queries := exprs
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			queries = append(queries, grafanaVars.Replace(v.Definition))
		}
	}
	for _, q := range queries {
		// Series names, not the label names a grouping lists.
		sels := selectorRE.FindAllStringSubmatch(groupingRE.ReplaceAllString(q, ""), -1)
		require.NotEmpty(t, sels, "no kite_ series in %q", q)
		var names []string
		for _, s := range sels {
			name := s[1]
			labels, ok := series[name]
			require.True(t, ok, "%q reads %s, which a server does not expose (exposed: %v)", q, name, keys(series))
			used[name] = true
			names = append(names, name)
			for _, m := range matcherRE.FindAllStringSubmatch(s[2], -1) {
				if m[1] == "job" || m[1] == "instance" { // added by Prometheus at scrape
					continue
				}
				require.True(t, labels[m[1]], "%q matches on label %s, which %s does not have", q, m[1], name)
			}
		}
		for _, g := range groupingRE.FindAllStringSubmatch(q, -1) {
			for _, l := range strings.Split(g[1], ",") {
				l = strings.TrimSpace(l)
				found := false
				for _, n := range names {
					found = found || series[n][l]
				}
				require.True(t, found, "%q groups by %s, which none of %v has", q, l, names)
			}
		}
	}
	// And the dashboard shows every family the metrics filter exposes.
	for _, fam := range []string{"kite_rpc_calls_total", "kite_rpc_duration_seconds_bucket", "kite_rpc_in_flight", "kite_rpc_server_rejected_total",
		"rpc_server_call_duration_seconds_bucket", "rpc_client_call_duration_seconds_bucket"} {
		require.True(t, used[fam], "the dashboard never shows %s", fam)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// promLabels formats name{labels} as PromQL series notation.
func promLabels(name string, ls map[string]string) string {
	names := keys(ls)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, n+"="+strconv.Quote(ls[n]))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// TestGRPCCompatRulesOnExposedSeries runs the shipped recording rules
// (docs/prometheus/kite-grpc-compat.rules.yml) in the real promtool's
// rule unit tester over the series a busy server exposed, and expects
// go-grpc-middleware's grpc_{server,client}_handled_total and
// _handling_seconds_count with the values Kite counted: what a dashboard
// for grpc-go servers would read from a Kite server.
func TestGRPCCompatRulesOnExposedSeries(t *testing.T) {
	promtool := testkit.Tool(t, "promtool", promtoolHint)
	rulesPath, err := filepath.Abs(filepath.Join("..", "..", "docs", "prometheus", "kite-grpc-compat.rules.yml"))
	require.NoError(t, err)
	out, err := exec.Command(promtool, "check", "rules", rulesPath).CombinedOutput()
	require.NoError(t, err, "%s", out)

	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(scrapeBusyServer(t)))
	require.NoError(t, err)
	type series struct {
		Series string `json:"series"`
		Values string `json:"values"`
	}
	var input []series
	// Each exposed sample holds its value for three minutes.
	add := func(name string, ls map[string]string, v float64) {
		f := strconv.FormatFloat(v, 'g', -1, 64)
		input = append(input, series{Series: promLabels(name, ls), Values: f + " " + f + " " + f})
	}
	// want[output series] = value, summed over the peer label as the rules do.
	want := map[string]float64{}
	grpcLabels := func(ls map[string]string) map[string]string {
		out := map[string]string{}
		m := ls["method"]
		if i := strings.LastIndexByte(m, '.'); i >= 0 {
			out["grpc_service"], out["grpc_method"] = m[:i], m[i+1:]
		} else {
			out["grpc_method"] = m
		}
		if c, ok := ls["code"]; ok {
			out["grpc_code"] = c
		}
		return out
	}
	for _, fam := range []string{"kite_rpc_calls_total", "kite_rpc_duration_seconds"} {
		for _, m := range mfs[fam].GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			if fam == "kite_rpc_calls_total" {
				add(fam, ls, m.GetCounter().GetValue())
				want[promLabels("grpc_"+ls["side"]+"_handled_total", grpcLabels(ls))] += m.GetCounter().GetValue()
				continue
			}
			h := m.GetHistogram()
			add(fam+"_count", ls, float64(h.GetSampleCount()))
			add(fam+"_sum", ls, h.GetSampleSum())
			want[promLabels("grpc_"+ls["side"]+"_handling_seconds_count", grpcLabels(ls))] += float64(h.GetSampleCount())
		}
	}
	require.Contains(t, want, `grpc_server_handled_total{grpc_code="OK",grpc_method="Echo",grpc_service="Gate"}`)
	require.Contains(t, want, `grpc_server_handled_total{grpc_code="ResourceExhausted",grpc_method="Echo",grpc_service="Gate"}`)
	require.Contains(t, want, `grpc_server_handled_total{grpc_code="Unimplemented",grpc_method="_OTHER"}`)

	type sample struct {
		Labels string  `json:"labels"`
		Value  float64 `json:"value"`
	}
	type exprTest struct {
		Expr       string   `json:"expr"`
		EvalTime   string   `json:"eval_time"`
		ExpSamples []sample `json:"exp_samples"`
	}
	var exprTests []exprTest
	for _, name := range []string{"grpc_server_handled_total", "grpc_client_handled_total", "grpc_server_handling_seconds_count", "grpc_client_handling_seconds_count"} {
		et := exprTest{Expr: name, EvalTime: "2m"}
		for _, k := range keys(want) {
			if strings.HasPrefix(k, name+"{") {
				et.ExpSamples = append(et.ExpSamples, sample{Labels: k, Value: want[k]})
			}
		}
		require.NotEmpty(t, et.ExpSamples, name)
		exprTests = append(exprTests, et)
	}
	unit := map[string]any{
		"rule_files":          []string{rulesPath},
		"evaluation_interval": "1m",
		"tests": []any{map[string]any{
			"interval":         "1m",
			"input_series":     input,
			"promql_expr_test": exprTests,
		}},
	}
	b, err := json.MarshalIndent(unit, "", "  ")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "compat_test.yml")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	out, err = exec.Command(promtool, "test", "rules", path).CombinedOutput()
	require.NoError(t, err, "promtool test rules:\n%s\n%s", out, b)
	require.Contains(t, string(out), "SUCCESS")
}
