package grpcinterop

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/health"
	codecproto "github.com/kiterpc/kite/plugins/codec-proto"
	"github.com/kiterpc/kite/spi"
)

// next reads the watcher's next status within the test's patience.
func next(t *testing.T, w *health.Watcher, want health.Status) {
	t.Helper()
	got, err := w.Next()
	if err != nil || got != want {
		t.Fatalf("watch: got %q %v, want %q", got, err, want)
	}
}

// TestHealthWithProtoCodecClient: a Kite client whose codec is proto
// checks and watches a Kite server's health over Kite's protocol (the
// health messages' protobuf form, grpc.health.v1's bytes), with the proto
// codec's default options and with deterministic / discard_unknown.
func TestHealthWithProtoCodecClient(t *testing.T) {
	for name, codec := range map[string]*codecproto.Codec{
		"default":                       codecproto.New(),
		"deterministic+discard_unknown": codecproto.NewWithConfig(codecproto.Config{Deterministic: true, DiscardUnknown: true}),
	} {
		t.Run(name, func(t *testing.T) {
			h := health.NewService()
			srv, err := core.NewServer(core.ServerOptions{Codecs: []spi.Codec{codec}})
			if err != nil {
				t.Fatal(err)
			}
			if err := health.Register(srv, h); err != nil {
				t.Fatal(err)
			}
			ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			c, err := core.NewClient(core.ClientOptions{Targets: []string{ln.Addr().String()}, Codec: codec})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()

			if st, err := health.Check(ctx, c, ""); err != nil || st != health.Serving {
				t.Fatalf("Check(\"\") with the proto codec: %q %v", st, err)
			}
			if _, err := health.Check(ctx, c, "Users"); !errors.Is(err, spi.ErrNotFound) {
				t.Fatalf("Check of an unknown service: %v, want NotFound", err)
			}
			w, err := health.Watch(ctx, c, "Users")
			if err != nil {
				t.Fatal(err)
			}
			next(t, w, health.ServiceUnknown)
			h.SetServing("Users", true)
			next(t, w, health.Serving)
			h.SetServing("Users", false)
			next(t, w, health.NotServing)
			if st, err := health.Check(ctx, c, "Users"); err != nil || st != health.NotServing {
				t.Fatalf("Check(Users): %q %v", st, err)
			}
			cancel()
		})
	}
}

// TestHealthHelperCallsGRPCGoHealthServer: since the protobuf form is
// grpc.health.v1's, health.Check and health.Watch through a Kite client on
// the grpc transport (Health mapped to package grpc.health.v1) work
// against grpc-go's own health server.
func TestHealthHelperCallsGRPCGoHealthServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := grpchealth.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()
	hs.SetServingStatus("greeter", healthpb.HealthCheckResponse_SERVING)

	c, err := core.NewClient(core.ClientOptions{
		Targets:   []string{ln.Addr().String()},
		Transport: &core.GRPCTransport{Packages: map[string]string{health.ServiceName: "grpc.health.v1"}},
		Codec:     codecproto.New(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := health.Check(ctx, c, "greeter"); err != nil || st != health.Serving {
		t.Fatalf("Check(greeter) against grpc-go: %q %v", st, err)
	}
	if _, err := health.Check(ctx, c, "nope"); !errors.Is(err, spi.ErrNotFound) {
		t.Fatalf("Check(nope) against grpc-go: %v, want NotFound", err)
	}
	w, err := health.Watch(ctx, c, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	next(t, w, health.Serving)
	hs.SetServingStatus("greeter", healthpb.HealthCheckResponse_NOT_SERVING)
	next(t, w, health.NotServing)
	cancel()
}
