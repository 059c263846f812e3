package grpcsvc_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/grpcsvc"
	"github.com/kiterpc/kite/core/health"
	"github.com/kiterpc/kite/internal/testpb/eco/ecov1"
	"github.com/kiterpc/kite/internal/testpb/eco/ecov2"
	"github.com/kiterpc/kite/spi"
)

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

// TestGrpcurlTwoPackagesSameServiceName: grpcurl, driven through the
// server's reflection, lists, describes and calls eco.v1.Inventory and
// eco.v2.Inventory (stubs from the real protoc) on one Kite server, and
// gRPC health answers for each full name.
func TestGrpcurlTwoPackagesSameServiceName(t *testing.T) {
	bin := grpcurl(t)
	srv, err := core.NewServer(core.ServerOptions{Codecs: []spi.Codec{protoCodec{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.EnableGRPC(core.GRPCOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ecov1.RegisterInventoryServer(srv, inv1{}); err != nil {
		t.Fatal(err)
	}
	if err := ecov2.RegisterInventoryServer(srv, inv2{}); err != nil {
		t.Fatal(err)
	}
	h := health.NewService()
	h.SetServing(ecov1.Inventory_ServiceName, true)
	h.SetServing(ecov2.Inventory_ServiceName, false)
	if err := grpcsvc.Register(srv, h); err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()

	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, append([]string{"-plaintext", "-max-time", "10"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("grpcurl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	list := run(addr, "list")
	for _, want := range []string{"eco.v1.Inventory\n", "eco.v2.Inventory\n"} {
		if !strings.Contains(list, want) {
			t.Fatalf("grpcurl list lacks %s:\n%s", want, list)
		}
	}
	for _, v := range []string{"v1", "v2"} {
		desc := run(addr, "describe", "eco."+v+".Inventory")
		if !strings.Contains(desc, "rpc Get ( .eco."+v+".GetRequest ) returns ( .eco."+v+".Item )") {
			t.Fatalf("grpcurl describe eco.%s.Inventory:\n%s", v, desc)
		}
		call := run("-d", `{"sku":"x"}`, addr, "eco."+v+".Inventory/Get")
		if !strings.Contains(call, `"version": "`+v+`"`) {
			t.Fatalf("grpcurl call eco.%s.Inventory/Get:\n%s", v, call)
		}
	}
	if hc := run("-d", `{"service":"eco.v1.Inventory"}`, addr, "grpc.health.v1.Health/Check"); !strings.Contains(hc, `"status": "SERVING"`) {
		t.Fatalf("health of eco.v1.Inventory:\n%s", hc)
	}
	if hc := run("-d", `{"service":"eco.v2.Inventory"}`, addr, "grpc.health.v1.Health/Check"); !strings.Contains(hc, `"status": "NOT_SERVING"`) {
		t.Fatalf("health of eco.v2.Inventory:\n%s", hc)
	}
}
