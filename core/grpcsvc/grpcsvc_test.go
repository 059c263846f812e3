package grpcsvc_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/grpcsvc"
	"github.com/kiterpc/kite/core/health"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	"github.com/kiterpc/kite/spi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

type protoCodec struct{}

func (protoCodec) Name() string { return "proto" }
func (protoCodec) ID() uint8    { return spi.CodecProto }
func (protoCodec) Marshal(dst []byte, v any) ([]byte, error) {
	return proto.MarshalOptions{}.MarshalAppend(dst, v.(proto.Message))
}
func (protoCodec) Unmarshal(data []byte, v any) error {
	return proto.Unmarshal(data, v.(proto.Message))
}

type greeter struct {
	greeterpb.UnimplementedGreeterServer
}

func (greeter) SayHello(_ context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return &greeterpb.HelloReply{Message: "Hello, " + req.GetName() + "!", Seq: 1}, nil
}

// Echo is a Kite service whose messages are protobuf but which no .proto
// file declares: reflection synthesizes its file.
type Echo struct{}

func (Echo) Say(_ context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return &greeterpb.HelloReply{Message: req.GetName()}, nil
}

func start(t *testing.T) (*core.Server, *health.Service, string) {
	t.Helper()
	srv, err := core.NewServer(core.ServerOptions{Codecs: []spi.Codec{protoCodec{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.EnableGRPC(core.GRPCOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := greeterpb.RegisterGreeterServer(srv, greeter{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Register("Echo", Echo{}); err != nil {
		t.Fatal(err)
	}
	h := health.NewService()
	h.SetServing("Greeter", true)
	if err := health.Register(srv, h); err != nil {
		t.Fatal(err)
	}
	if err := grpcsvc.Register(srv, h); err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv, h, ln.Addr().String()
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func TestHealthCheckAndWatchThroughDrain(t *testing.T) {
	_, h, addr := start(t)
	hc := healthpb.NewHealthClient(dial(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, name := range []string{"", "Greeter", "kite.examples.greeter.Greeter"} {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: name})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check(%q) = %v, %v; want SERVING", name, r, err)
		}
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "Nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("Check of an unknown service: %v, want NotFound", err)
	}
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "Greeter"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first Watch status %v %v", r, err)
	}
	h.Shutdown() // what core/stack does first when a drain begins
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch during drain: %v %v, want NOT_SERVING", r, err)
	}
	if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Check during drain = %v, %v; want NOT_SERVING", r, err)
	}
}

func TestReflectionListsAndDescribes(t *testing.T) {
	_, _, addr := start(t)
	rc := rpb.NewServerReflectionClient(dial(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := rc.ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *rpb.ServerReflectionRequest) *rpb.ServerReflectionResponse {
		t.Helper()
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, s := range r.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	want := "Health grpc.health.v1.Health grpc.reflection.v1.ServerReflection kite.Echo kite.examples.greeter.Greeter"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("services %q, want %q", got, want)
	}
	for sym, method := range map[string]string{"kite.examples.greeter.Greeter": "SayHello", "kite.Echo": "Say"} {
		r = ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: sym}})
		files := r.GetFileDescriptorResponse().GetFileDescriptorProto()
		if len(files) == 0 {
			t.Fatalf("no file for %s: %v", sym, r)
		}
		var fd descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(files[0], &fd); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range fd.GetService() {
			for _, m := range s.GetMethod() {
				found = found || fd.GetPackage()+"."+s.GetName() == sym && m.GetName() == method
			}
		}
		if !found {
			t.Fatalf("file %s does not declare %s.%s", fd.GetName(), sym, method)
		}
	}
	r = ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "no.Such"}})
	if r.GetErrorResponse().GetErrorCode() != int32(codes.NotFound) {
		t.Fatalf("unknown symbol: %v", r)
	}
	// The synthesized service is callable under its reflected name.
	out := &greeterpb.HelloReply{}
	if err := dial(t, addr).Invoke(ctx, "/kite.Echo/Say", &greeterpb.HelloRequest{Name: "via kite.Echo"}, out); err != nil || out.GetMessage() != "via kite.Echo" {
		t.Fatalf("calling kite.Echo/Say: %v %v", out, err)
	}
}

// grpcurlVersion is the grpcurl release the tests build and drive.
const grpcurlVersion = "v1.9.3"

var (
	grpcurlOnce sync.Once
	grpcurlPath string
	grpcurlErr  error
)

// grpcurl returns the grpcurl binary, built once from its Go module at
// the pinned version into the repository's .kite/bin (scripts/test.sh
// builds it ahead; this builds it when run alone).
func grpcurl(t *testing.T) string {
	t.Helper()
	grpcurlOnce.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			grpcurlErr = err
			return
		}
		bin := filepath.Join(root, ".kite", "bin")
		grpcurlPath = filepath.Join(bin, "grpcurl-"+grpcurlVersion)
		if _, err := os.Stat(grpcurlPath); err == nil {
			return
		}
		tmp := filepath.Join(bin, "tmp-grpcurl")
		_ = os.MkdirAll(tmp, 0o755)
		defer os.RemoveAll(tmp)
		start := time.Now()
		cmd := exec.Command("go", "install", "github.com/fullstorydev/grpcurl/cmd/grpcurl@"+grpcurlVersion)
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=-buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			grpcurlErr = fmt.Errorf("building grpcurl %s: %v\n%s", grpcurlVersion, err, out)
			return
		}
		grpcurlErr = os.Rename(filepath.Join(tmp, "grpcurl"), grpcurlPath)
		t.Logf("built grpcurl %s in %v", grpcurlVersion, time.Since(start).Round(time.Millisecond))
	})
	if grpcurlErr != nil {
		t.Fatal(grpcurlErr)
	}
	return grpcurlPath
}

func TestGrpcurlListsDescribesAndCalls(t *testing.T) {
	bin := grpcurl(t)
	_, _, addr := start(t)
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
	for _, want := range []string{"kite.examples.greeter.Greeter", "grpc.health.v1.Health", "kite.Echo"} {
		if !strings.Contains(list, want) {
			t.Fatalf("grpcurl list lacks %s:\n%s", want, list)
		}
	}
	desc := run(addr, "describe", "kite.examples.greeter.Greeter")
	if !strings.Contains(desc, "rpc SayHello ( .kite.examples.greeter.HelloRequest ) returns ( .kite.examples.greeter.HelloReply )") ||
		!strings.Contains(desc, "rpc Chat ( stream .kite.examples.greeter.HelloRequest ) returns ( stream .kite.examples.greeter.HelloReply )") {
		t.Fatalf("grpcurl describe:\n%s", desc)
	}
	call := run("-d", `{"name":"grpcurl"}`, addr, "kite.examples.greeter.Greeter/SayHello")
	if !strings.Contains(call, `"message": "Hello, grpcurl!"`) {
		t.Fatalf("grpcurl call:\n%s", call)
	}
	hc := run(addr, "grpc.health.v1.Health/Check")
	if !strings.Contains(hc, `"status": "SERVING"`) {
		t.Fatalf("grpcurl health check:\n%s", hc)
	}
}

// TestGRPCHealthWatchLikeGRPCGo: a real grpc-go health client. Watch of a
// service not known sends SERVICE_UNKNOWN and the stream stays open (the
// service's later status arrives on it); health Shutdown sends
// NOT_SERVING and Resume SERVING on the same stream, as grpc-go's health
// server; the server's own Shutdown ends the watch with OK after
// NOT_SERVING instead of holding the drain.
func TestGRPCHealthWatchLikeGRPCGo(t *testing.T) {
	srv, h, addr := start(t)
	hc := healthpb.NewHealthClient(dial(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	recv := func(w healthpb.Health_WatchClient, want healthpb.HealthCheckResponse_ServingStatus, what string) {
		t.Helper()
		r, err := w.Recv()
		if err != nil || r.GetStatus() != want {
			t.Fatalf("%s: %v %v, want %v", what, r, err, want)
		}
	}

	unknown, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "eco.v9.Later"})
	if err != nil {
		t.Fatal(err)
	}
	recv(unknown, healthpb.HealthCheckResponse_SERVICE_UNKNOWN, "Watch of an unknown service")
	h.SetServing("eco.v9.Later", false)
	recv(unknown, healthpb.HealthCheckResponse_NOT_SERVING, "the unknown service's first status, on the same stream")

	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "kite.examples.greeter.Greeter"})
	if err != nil {
		t.Fatal(err)
	}
	recv(w, healthpb.HealthCheckResponse_SERVING, "first status")
	h.Shutdown()
	recv(w, healthpb.HealthCheckResponse_NOT_SERVING, "after health Shutdown")
	h.Resume()
	recv(w, healthpb.HealthCheckResponse_SERVING, "after Resume")
	recv(unknown, healthpb.HealthCheckResponse_SERVING, "Resume sets every status SERVING")
	if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check after Resume = %v, %v; want SERVING", r, err)
	}

	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	begun := time.Now()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(sctx) }()
	for _, st := range []healthpb.Health_WatchClient{w, unknown} {
		recv(st, healthpb.HealthCheckResponse_NOT_SERVING, "when the server stops")
		if r, err := st.Recv(); err != io.EOF {
			t.Fatalf("after the server stopped: %v %v, want the stream to end (io.EOF)", r, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v (a watch held the drain to its deadline)", err)
	}
	if d := time.Since(begun); d > 2*time.Second {
		t.Fatalf("Shutdown took %v with watches open", d)
	}
}
