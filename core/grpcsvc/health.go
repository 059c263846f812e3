package grpcsvc

import (
	"context"
	"strings"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// HealthService is gRPC's health service name.
const HealthService = "grpc.health.v1.Health"

// RegisterHealth adds grpc.health.v1.Health to srv, answering from h.
func RegisterHealth(srv *core.Server, h *health.Service) error {
	return srv.RegisterGRPC(HealthService, healthDesc(h), h)
}

// kiteName maps a gRPC health service name to the name h knows: as
// given, else without its proto package.
func kiteName(h *health.Service, name string) string {
	if _, ok := h.Status(name); ok || name == "" {
		return name
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		if _, ok := h.Status(name[i+1:]); ok {
			return name[i+1:]
		}
	}
	return name
}

func toPB(s health.Status, watch bool) healthpb.HealthCheckResponse_ServingStatus {
	switch s {
	case health.Serving:
		return healthpb.HealthCheckResponse_SERVING
	case health.NotServing:
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	if watch {
		return healthpb.HealthCheckResponse_SERVICE_UNKNOWN
	}
	return healthpb.HealthCheckResponse_UNKNOWN
}

func healthDesc(h *health.Service) *core.ServiceDesc {
	return &core.ServiceDesc{
		Name: "Health",
		Methods: []core.MethodDesc{{
			Name:       "Check",
			Idempotent: true,
			NewRequest: func() any { return new(healthpb.HealthCheckRequest) },
			Handler: func(ctx context.Context, _ any, req any) (any, error) {
				r := req.(*healthpb.HealthCheckRequest)
				resp, err := h.Check(ctx, &health.CheckRequest{Service: kiteName(h, r.GetService())})
				if err != nil {
					return nil, err // NotFound for a service never announced, as gRPC's own
				}
				return &healthpb.HealthCheckResponse{Status: toPB(resp.Status, false)}, nil
			},
		}},
		Streams: []core.StreamDesc{{
			Name: "Watch",
			Handler: func(ctx context.Context, _ any, st *core.Stream) error {
				r := new(healthpb.HealthCheckRequest)
				if err := st.Recv(r); err != nil {
					return err
				}
				return h.Watch(ctx, kiteName(h, r.GetService()), func(c *health.CheckResponse) error {
					return st.Send(&healthpb.HealthCheckResponse{Status: toPB(c.Status, true)})
				})
			},
		}},
	}
}
