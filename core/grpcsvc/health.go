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
// Watch behaves as grpc-go's health server: SERVICE_UNKNOWN for a service
// h does not know, NOT_SERVING on h.Shutdown and SERVING on h.Resume on
// the same open stream; unlike grpc-go's, the stream ends (OK, after
// NOT_SERVING) once srv begins to stop, so it does not hold the drain.
func RegisterHealth(srv *core.Server, h *health.Service) error {
	return srv.RegisterGRPC(HealthService, healthDesc(h, srv.Stopping()), h)
}

// kiteName maps a gRPC health service name to the name h knows: as
// given (proto services are known by their full names), else without its
// proto package (a Go service's short name).
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

func toPB(s health.Status) healthpb.HealthCheckResponse_ServingStatus {
	switch s {
	case health.Serving:
		return healthpb.HealthCheckResponse_SERVING
	case health.NotServing:
		return healthpb.HealthCheckResponse_NOT_SERVING
	case health.ServiceUnknown:
		return healthpb.HealthCheckResponse_SERVICE_UNKNOWN
	}
	return healthpb.HealthCheckResponse_UNKNOWN
}

func healthDesc(h *health.Service, stop <-chan struct{}) *core.ServiceDesc {
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
				return &healthpb.HealthCheckResponse{Status: toPB(resp.Status)}, nil
			},
		}},
		Streams: []core.StreamDesc{{
			Name: "Watch",
			Handler: func(ctx context.Context, _ any, st *core.Stream) error {
				r := new(healthpb.HealthCheckRequest)
				if err := st.Recv(r); err != nil {
					return err
				}
				return h.WatchUntil(ctx, kiteName(h, r.GetService()), stop, func(c *health.CheckResponse) error {
					return st.Send(&healthpb.HealthCheckResponse{Status: toPB(c.Status)})
				})
			},
		}},
	}
}
