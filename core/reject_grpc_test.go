package core_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	"github.com/kiterpc/kite/spi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// protocolRecorder records the Protocol of the calls its chain runs and
// the rejections its server reports.
type protocolRecorder struct {
	mu        sync.Mutex
	protocols []string
	rejected  []spi.Rejection
}

func (p *protocolRecorder) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		p.mu.Lock()
		p.protocols = append(p.protocols, call.Protocol)
		p.mu.Unlock()
		return next(ctx, call)
	}
}

func (p *protocolRecorder) CallRejected(r *spi.Rejection) {
	p.mu.Lock()
	p.rejected = append(p.rejected, *r)
	p.mu.Unlock()
}

// TestGRPCCallsCarryProtocolAndRejectionsReachObservers: a call served on
// the gRPC path says so in Call.Protocol (a tracing filter names the RPC
// system by it), and a real grpc-go client's call to an unknown method is
// reported to the reject observers like a Kite one.
func TestGRPCCallsCarryProtocolAndRejectionsReachObservers(t *testing.T) {
	rec := &protocolRecorder{}
	_, addr, _ := startGRPCServer(t, core.ServerOptions{Filters: []spi.Filter{rec}})
	cc := dialGRPC(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cc.Invoke(ctx, greeterPath+"SayHello", &greeterpb.HelloRequest{Name: "x"}, &greeterpb.HelloReply{}); err != nil {
		t.Fatal(err)
	}
	err := cc.Invoke(ctx, "/kite.examples.greeter.Nope/SayHello", &greeterpb.HelloRequest{Name: "x"}, &greeterpb.HelloReply{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("want Unimplemented, got %v", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.protocols) != 1 || rec.protocols[0] != spi.ProtocolGRPC {
		t.Fatalf("chain saw protocols %q, want one %q", rec.protocols, spi.ProtocolGRPC)
	}
	if len(rec.rejected) != 1 {
		t.Fatalf("rejections %+v, want one", rec.rejected)
	}
	r := rec.rejected[0]
	if r.Known || r.Reason != spi.ReasonUnknownMethod || r.Protocol != spi.ProtocolGRPC || spi.CodeOf(r.Err) != spi.Unimplemented || r.Method != "kite.examples.greeter.Nope.SayHello" {
		t.Fatalf("rejection %+v", r)
	}
}
