package health_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/kiterpc/kite/core/health"
	"github.com/kiterpc/kite/spi"
)

func marshalVT(t *testing.T, m interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
}) []byte {
	t.Helper()
	b := make([]byte, m.SizeVT())
	n, err := m.MarshalToSizedBufferVT(b)
	require.NoError(t, err)
	require.Equal(t, len(b), n)
	return b
}

// TestWireIsGRPCHealthV1: the protobuf form of CheckRequest and
// CheckResponse is byte for byte grpc.health.v1's, both ways.
func TestWireIsGRPCHealthV1(t *testing.T) {
	for _, svc := range []string{"", "Echo", "eco.v1.Inventory", string(make([]byte, 300))} {
		want, err := proto.Marshal(&healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err)
		assert.Equal(t, want, marshalVT(t, &health.CheckRequest{Service: svc}), "service %q", svc)
		var got health.CheckRequest
		got.Service = "stale"
		require.NoError(t, got.UnmarshalVT(want))
		assert.Equal(t, svc, got.Service)
	}
	for st, pb := range map[health.Status]healthpb.HealthCheckResponse_ServingStatus{
		health.Unknown: healthpb.HealthCheckResponse_UNKNOWN, health.Serving: healthpb.HealthCheckResponse_SERVING,
		health.NotServing: healthpb.HealthCheckResponse_NOT_SERVING, health.ServiceUnknown: healthpb.HealthCheckResponse_SERVICE_UNKNOWN,
	} {
		want, err := proto.Marshal(&healthpb.HealthCheckResponse{Status: pb})
		require.NoError(t, err)
		assert.Equal(t, want, marshalVT(t, &health.CheckResponse{Status: st}), "status %s", st)
		var got health.CheckResponse
		require.NoError(t, got.UnmarshalVT(want))
		assert.Equal(t, st, got.Status)
	}
	// A status grpc.health.v1 has no value for is sent as UNKNOWN, as the
	// gRPC health service does.
	assert.Empty(t, marshalVT(t, &health.CheckResponse{Status: "WARMING_UP"}))

	// Unknown fields (a newer peer) are skipped.
	var req health.CheckRequest
	require.NoError(t, req.UnmarshalVT([]byte{0x10, 0x05, 0x0a, 0x02, 'h', 'i', 0x1d, 1, 2, 3, 4}))
	assert.Equal(t, "hi", req.Service)

	// Malformed input is an InvalidArgument, not a panic.
	for _, bad := range [][]byte{{0x0a, 0x05, 'a'}, {0x0a}, {0x08}, {0x00}, {0x0b}, {0x09, 1, 2}} {
		err := req.UnmarshalVT(bad)
		assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err), "% x: %v", bad, err)
	}
	var resp health.CheckResponse
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(resp.UnmarshalVT([]byte{0x0a, 0x01, 'x'})), "status with wire type 2")
}
