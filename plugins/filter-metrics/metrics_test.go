package metricsfilter

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/kiterpc/kite/spi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// returning is a fake next invoker that answers every call with err.
func returning(err error) spi.Invoker {
	return func(context.Context, *spi.Call) error { return err }
}

func call(t *testing.T, inv spi.Invoker, side spi.Side, method, peer string) {
	t.Helper()
	_ = inv(context.Background(), &spi.Call{Side: side, Method: method, Peer: peer})
}

// family finds a gathered metric family by name.
func family(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	t.Fatalf("no metric family %q", name)
	return nil
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestCountsByCodeMethodAndSide(t *testing.T) {
	reg := prometheus.NewRegistry()
	f, err := NewFilter(Options{Registerer: reg})
	require.NoError(t, err)
	ok := f.Wrap(returning(nil))
	notFound := f.Wrap(returning(spi.Errorf(spi.NotFound, "no user")))
	unavailable := f.Wrap(returning(spi.Errorf(spi.Unavailable, "down")))
	for range 3 {
		call(t, ok, spi.ServerSide, "Users.Get", "127.0.0.1:4001")
	}
	for range 2 {
		call(t, notFound, spi.ServerSide, "Users.Get", "127.0.0.1:4002")
	}
	call(t, ok, spi.ServerSide, "Users.List", "127.0.0.1:4001")
	call(t, unavailable, spi.ClientSide, "Users.Get", "")

	expected := `
# HELP kite_rpc_calls_total Calls finished, by side, method and status code.
# TYPE kite_rpc_calls_total counter
kite_rpc_calls_total{code="NotFound",method="Users.Get",side="server"} 2
kite_rpc_calls_total{code="OK",method="Users.Get",side="server"} 3
kite_rpc_calls_total{code="OK",method="Users.List",side="server"} 1
kite_rpc_calls_total{code="Unavailable",method="Users.Get",side="client"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected), "kite_rpc_calls_total"))

	counts := map[string]uint64{}
	for _, m := range family(t, reg, "kite_rpc_duration_seconds").GetMetric() {
		l := labels(m)
		counts[l["side"]+" "+l["method"]] = m.GetHistogram().GetSampleCount()
		require.Len(t, m.GetHistogram().GetBucket(), len(DefaultBuckets))
	}
	require.Equal(t, map[string]uint64{"server Users.Get": 5, "server Users.List": 1, "client Users.Get": 1}, counts)

	for _, m := range family(t, reg, "kite_rpc_in_flight").GetMetric() {
		require.Zero(t, m.GetGauge().GetValue(), "in flight %v", labels(m))
	}
}

func TestInFlightRisesAndFalls(t *testing.T) {
	reg := prometheus.NewRegistry()
	f, err := NewFilter(Options{Registerer: reg, Namespace: "svc"})
	require.NoError(t, err)
	entered, release := make(chan struct{}), make(chan struct{})
	inv := f.Wrap(func(ctx context.Context, c *spi.Call) error {
		entered <- struct{}{}
		<-release
		return nil
	})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { call(t, inv, spi.ServerSide, "Svc.Slow", "") })
	}
	for range 3 {
		<-entered
	}
	gauge := f.inflight.WithLabelValues("server", "Svc.Slow")
	require.Equal(t, 3.0, testutil.ToFloat64(gauge))
	close(release)
	wg.Wait()
	require.Equal(t, 0.0, testutil.ToFloat64(gauge))
	require.Equal(t, 3.0, testutil.ToFloat64(f.calls.WithLabelValues("server", "Svc.Slow", "OK")))
	require.Equal(t, 1, testutil.CollectAndCount(f.inflight, "svc_rpc_in_flight"))
}

func TestPeerLabel(t *testing.T) {
	reg := prometheus.NewRegistry()
	f, err := NewFilter(Options{Registerer: reg, PeerLabel: true, Buckets: []float64{0.01, 0.1, 1}})
	require.NoError(t, err)
	ok := f.Wrap(returning(nil))
	// Two connections from one host: the ephemeral port must not split series.
	call(t, ok, spi.ServerSide, "Svc.M", "10.0.0.7:51000")
	call(t, ok, spi.ServerSide, "Svc.M", "10.0.0.7:51001")
	call(t, ok, spi.ServerSide, "Svc.M", "[::1]:51002")
	// On the client the peer is the instance the call went to.
	setPeer := f.Wrap(func(ctx context.Context, c *spi.Call) error { c.Peer = "10.0.0.9:9000"; return nil })
	call(t, setPeer, spi.ClientSide, "Svc.M", "")

	expected := `
# HELP kite_rpc_calls_total Calls finished, by side, method and status code.
# TYPE kite_rpc_calls_total counter
kite_rpc_calls_total{code="OK",method="Svc.M",peer="10.0.0.7",side="server"} 2
kite_rpc_calls_total{code="OK",method="Svc.M",peer="::1",side="server"} 1
kite_rpc_calls_total{code="OK",method="Svc.M",peer="10.0.0.9:9000",side="client"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected), "kite_rpc_calls_total"))
	for _, m := range family(t, reg, "kite_rpc_duration_seconds").GetMetric() {
		require.Len(t, m.GetHistogram().GetBucket(), 3)
		require.Contains(t, labels(m), "peer")
	}
}

func TestRegisteringTwiceSharesSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := NewFilter(Options{Registerer: reg})
	require.NoError(t, err)
	b, err := NewFilter(Options{Registerer: reg})
	require.NoError(t, err)
	require.Same(t, a.calls, b.calls)
	call(t, a.Wrap(returning(nil)), spi.ClientSide, "Svc.M", "")
	call(t, b.Wrap(returning(nil)), spi.ServerSide, "Svc.M", "")
	call(t, b.Wrap(returning(nil)), spi.ServerSide, "Svc.M", "")
	require.Equal(t, 1.0, testutil.ToFloat64(a.calls.WithLabelValues("client", "Svc.M", "OK")))
	require.Equal(t, 2.0, testutil.ToFloat64(a.calls.WithLabelValues("server", "Svc.M", "OK")))

	// Disagreeing label sets cannot share families: a clear error.
	_, err = NewFilter(Options{Registerer: reg, PeerLabel: true})
	require.ErrorContains(t, err, "peer_label")
}

func TestConcurrentCalls(t *testing.T) {
	reg := prometheus.NewRegistry()
	f, err := NewFilter(Options{Registerer: reg})
	require.NoError(t, err)
	inv := f.Wrap(func(ctx context.Context, c *spi.Call) error {
		if c.Method == "Svc.Bad" {
			return spi.ErrInternal
		}
		return nil
	})
	methods := []string{"Svc.A", "Svc.B", "Svc.Bad", "Svc.C"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				call(t, inv, spi.Side(1+(g+i)%2), methods[i%len(methods)], "")
			}
		})
	}
	wg.Wait()
	total := 0.0
	for _, m := range family(t, reg, "kite_rpc_calls_total").GetMetric() {
		total += m.GetCounter().GetValue()
	}
	require.Equal(t, 4000.0, total)
	require.Equal(t, 1000.0, testutil.ToFloat64(f.calls.WithLabelValues("server", "Svc.Bad", "Internal"))+
		testutil.ToFloat64(f.calls.WithLabelValues("client", "Svc.Bad", "Internal")))
}

func TestCatalogEntryAndHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	old := Registerer
	Registerer = reg
	t.Cleanup(func() { Registerer = old })

	v, err := spi.Default.Build(spi.KindFilter, "metrics", spi.Config(`{"namespace":"app","buckets":[0.005,0.05,0.5],"peer_label":false}`))
	require.NoError(t, err)
	inv := v.(spi.Filter).Wrap(returning(spi.ErrPermissionDenied))
	call(t, inv, spi.ServerSide, "Admin.Drop", "127.0.0.1:1")

	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	body := rec.Body.String()
	require.Contains(t, body, `app_rpc_calls_total{code="PermissionDenied",method="Admin.Drop",side="server"} 1`)
	require.Contains(t, body, `app_rpc_duration_seconds_bucket{method="Admin.Drop",side="server",le="0.05"}`)
	require.Contains(t, body, `app_rpc_in_flight{method="Admin.Drop",side="server"} 0`)

	for _, bad := range []string{`{"buckets":[0.1,0.1]}`, `{"buckets":[-1]}`, `{"namespaces":"x"}`, `{"peer_label":"yes"}`} {
		_, err := spi.Default.Build(spi.KindFilter, "metrics", spi.Config(bad))
		require.Error(t, err, bad)
	}
}

func BenchmarkFilter(b *testing.B) {
	f, err := NewFilter(Options{Registerer: prometheus.NewRegistry()})
	require.NoError(b, err)
	inv := f.Wrap(returning(nil))
	c := &spi.Call{Side: spi.ServerSide, Method: "Svc.Echo"}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = inv(ctx, c)
		}
	})
}
