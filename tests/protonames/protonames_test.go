package protonames

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/health"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/internal/testpb/eco/ecov1"
	"github.com/kiterpc/kite/internal/testpb/eco/ecov2"
	metricsfilter "github.com/kiterpc/kite/plugins/filter-metrics"
	tracingfilter "github.com/kiterpc/kite/plugins/filter-tracing"
	"github.com/kiterpc/kite/spi"

	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/codec-proto"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
	_ "github.com/kiterpc/kite/plugins/registry-etcd"
)

func TestMain(m *testing.M) {
	// spawnLoop is spi/plugin's process-lifetime thread, started when
	// core/stack is linked.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/kiterpc/kite/spi/plugin.spawnLoop"))
}

type inv1 struct {
	ecov1.UnimplementedInventoryServer
}

func (inv1) Get(_ context.Context, r *ecov1.GetRequest) (*ecov1.Item, error) {
	return &ecov1.Item{Sku: r.GetSku(), Version: "v1"}, nil
}

type inv2 struct {
	ecov2.UnimplementedInventoryServer
}

func (inv2) Get(_ context.Context, r *ecov2.GetRequest) (*ecov2.Item, error) {
	return &ecov2.Item{Sku: r.GetSku(), Version: "v2"}, nil
}

// Each proto service is served by its own server block and registered
// under its full name; both servers share the metrics and tracing
// filters, and also answer gRPC.
const protoHCL = `
registry "etcd" "main" {
  endpoints = ["{{ETCD}}"]
  prefix    = "{{PREFIX}}"
  ttl       = "2s"
}

filter "metrics" "m" {
  namespace = "pn"
}

filter "tracing" "t" {}

server "inventory-v1" {
  listen       = "127.0.0.1:0"
  registry     = "main"
  service_name = "eco.v1.Inventory"
  filters      = ["m", "t"]
  grpc {}
}

server "inventory-v2" {
  listen       = "127.0.0.1:0"
  registry     = "main"
  service_name = "eco.v2.Inventory"
  filters      = ["m", "t"]
  grpc {}
}

client "v1" {
  service  = "eco.v1.Inventory"
  registry = "main"
  codec    = "proto"
  timeout  = "5s"
  filters  = ["m"]
}

client "v2" {
  service  = "eco.v2.Inventory"
  registry = "main"
  codec    = "proto"
  timeout  = "5s"
  filters  = ["m"]
}
`

func TestQualifiedNamesInRegistryMetricsAndTraces(t *testing.T) {
	etcd := testkit.Env(t, "KITE_ETCD_ADDR", "run `bash scripts/services.sh up && source .kite/services.env` (make test does)")
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	prefix := "/kite-protonames-" + hex.EncodeToString(rnd[:])

	oldReg := metricsfilter.Registerer
	metricsfilter.Registerer = prometheus.NewRegistry()
	t.Cleanup(func() { metricsfilter.Registerer = oldReg })
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	oldTP := tracingfilter.TracerProvider
	tracingfilter.TracerProvider = tp
	t.Cleanup(func() { tracingfilter.TracerProvider = oldTP })

	dir := t.TempDir()
	path := filepath.Join(dir, "kite.hcl")
	hcl := strings.NewReplacer("{{ETCD}}", etcd, "{{PREFIX}}", prefix).Replace(protoHCL)
	require.NoError(t, os.WriteFile(path, []byte(hcl), 0o600))
	st, err := stack.Load(path, stack.WithLogger(hclog.NewNullLogger()))
	require.NoError(t, err)
	defer st.Close()

	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 2)
	addrs := map[string]string{}
	servers := map[string]*core.Server{}
	for name, register := range map[string]func(*core.Server) error{
		"inventory-v1": func(s *core.Server) error {
			servers["inventory-v1"] = s
			return ecov1.RegisterInventoryServer(s, inv1{})
		},
		"inventory-v2": func(s *core.Server) error {
			servers["inventory-v2"] = s
			return ecov2.RegisterInventoryServer(s, inv2{})
		},
	} {
		ready := make(chan spi.Instance, 1)
		go func() { served <- st.ServeNotify(ctx, name, register, func(in spi.Instance) { ready <- in }) }()
		select {
		case in := <-ready:
			addrs[name] = in.Addr
		case err := <-served:
			t.Fatalf("serve %s: %v", name, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("serve %s: not ready after 10 s", name)
		}
	}
	defer func() {
		stop()
		require.NoError(t, <-served)
		require.NoError(t, <-served)
	}()

	// The registry: etcd holds each instance under the full name.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	resp, err := cli.Get(cctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	require.NoError(t, err)
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	sort.Strings(keys)
	assert.Equal(t, []string{
		prefix + "/eco.v1.Inventory/" + addrs["inventory-v1"],
		prefix + "/eco.v2.Inventory/" + addrs["inventory-v2"],
	}, keys)

	// Kite clients find each through the registry and call it by the
	// generated stubs' full names.
	c1, err := st.Client("v1")
	require.NoError(t, err)
	c2, err := st.Client("v2")
	require.NoError(t, err)
	it1, err := ecov1.NewInventoryClient(c1).Get(cctx, &ecov1.GetRequest{Sku: "a"})
	require.NoError(t, err)
	assert.Equal(t, "v1", it1.GetVersion())
	it2, err := ecov2.NewInventoryClient(c2).Get(cctx, &ecov2.GetRequest{Sku: "a"})
	require.NoError(t, err)
	assert.Equal(t, "v2", it2.GetVersion())
	// An old caller's short name still reaches v1's server (one package
	// there) and is counted under the full name.
	require.NoError(t, c1.Call(cctx, "Inventory.Get", &ecov1.GetRequest{Sku: "old"}, &ecov1.Item{}))

	// grpc-go calls the same servers by gRPC path.
	for name, path := range map[string]string{"inventory-v1": "/eco.v1.Inventory/Get", "inventory-v2": "/eco.v2.Inventory/Get"} {
		cc, err := grpc.NewClient("passthrough:///"+addrs[name], grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		out := &ecov1.Item{}
		err = cc.Invoke(cctx, path, &ecov1.GetRequest{Sku: "g"}, out)
		_ = cc.Close()
		require.NoError(t, err, path)
		assert.Equal(t, strings.Split(path, ".")[1], out.GetVersion(), path)
	}

	// Health: each server reports its service by the full name.
	for name, svc := range map[string]string{"inventory-v1": "eco.v1.Inventory", "inventory-v2": "eco.v2.Inventory"} {
		h := st.Health(servers[name])
		require.NotNil(t, h)
		s, ok := h.Status(svc)
		assert.True(t, ok, "%s knows %s", name, svc)
		assert.Equal(t, health.Serving, s)
	}
	// and so does grpc.health.v1 (the Kite Health service speaks JSON
	// structs; these clients are proto-only).
	cc, err := grpc.NewClient("passthrough:///"+addrs["inventory-v2"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	hr, err := healthpb.NewHealthClient(cc).Check(cctx, &healthpb.HealthCheckRequest{Service: "eco.v2.Inventory"})
	_ = cc.Close()
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, hr.GetStatus())

	// Metrics: the method label is the full name, on both sides; the
	// short-name call is counted under it too.
	srv := httptest.NewServer(metricsfilter.Handler())
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()
	body := get(t, srv.URL)
	for _, want := range []struct {
		side, method string
		calls        string
	}{
		{"server", "eco.v1.Inventory.Get", "3"}, // stub, short name, grpc-go
		{"server", "eco.v2.Inventory.Get", "2"}, // stub, grpc-go
		{"client", "eco.v1.Inventory.Get", "1"},
		{"client", "eco.v2.Inventory.Get", "1"},
	} {
		line := findSeries(body, "pn_rpc_calls_total", `side="`+want.side+`"`, `method="`+want.method+`"`, `code="OK"`)
		if assert.NotEmpty(t, line, "no pn_rpc_calls_total series for %s %s in\n%s", want.side, want.method, body) {
			assert.True(t, strings.HasSuffix(line, " "+want.calls), "%s: want %s calls", line, want.calls)
		}
	}
	assert.Empty(t, findSeries(body, "pn_rpc_calls_total", `side="server"`, `method="Inventory.Get"`), "server series under the short name")

	// Traces: the server spans name the service by its full name.
	found := map[string]bool{}
	for _, span := range exp.GetSpans() {
		for _, kv := range span.Attributes {
			if v := kv.Value.String(); strings.Contains(v, "eco.v1.Inventory") || strings.Contains(v, "eco.v2.Inventory") {
				found[span.Name+" "+string(kv.Key)+"="+v] = true
			}
		}
	}
	var v1, v2 bool
	for k := range found {
		v1 = v1 || strings.Contains(k, "eco.v1.Inventory")
		v2 = v2 || strings.Contains(k, "eco.v2.Inventory")
	}
	assert.True(t, v1 && v2, "spans naming eco.v1.Inventory and eco.v2.Inventory: %v", found)
	t.Logf("spans: %v", found)
}

func get(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	return string(b)
}

// findSeries returns the first exposition line of family whose labels
// contain every one of labels.
func findSeries(body, family string, labels ...string) string {
next:
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, family+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		return line
	}
	return ""
}
