package systems

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/kiterpc/kite/bench/echopb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func init() {
	register(System{Name: "grpc", Doc: "gRPC-go, protobuf, one ClientConn (default options)",
		Serve: serveGRPC, Dial: dialGRPC})
}

type grpcEcho struct {
	echopb.UnimplementedEchoServer
}

func (grpcEcho) Echo(_ context.Context, in *echopb.Payload) (*echopb.Payload, error) {
	return in, nil
}

func (grpcEcho) Stream(st echopb.Echo_StreamServer) error {
	var p echopb.Payload
	for {
		if err := st.RecvMsg(&p); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := st.Send(&p); err != nil {
			return err
		}
	}
}

type grpcServer struct{ s *grpc.Server }

func (g grpcServer) Close() error { g.s.Stop(); return nil }

func serveGRPC(ln net.Listener) (Server, error) {
	s := grpc.NewServer()
	echopb.RegisterEchoServer(s, grpcEcho{})
	go func() { _ = s.Serve(ln) }()
	return grpcServer{s}, nil
}

type grpcClient struct {
	cc *grpc.ClientConn
	ec echopb.EchoClient
}

func dialGRPC(addr string, _ int) (Client, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &grpcClient{cc: cc, ec: echopb.NewEchoClient(cc)}, nil
}

func (g *grpcClient) Echo(ctx context.Context, _ int, payload []byte) (int, error) {
	out, err := g.ec.Echo(ctx, &echopb.Payload{Data: payload})
	if err != nil {
		return 0, err
	}
	return len(out.Data), nil
}

func (g *grpcClient) Close() error { return g.cc.Close() }

func (g *grpcClient) OpenStream(ctx context.Context) (Stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	st, err := g.ec.Stream(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	return &grpcStream{st: st, cancel: cancel}, nil
}

type grpcStream struct {
	st     echopb.Echo_StreamClient
	cancel context.CancelFunc
	in     echopb.Payload
}

func (s *grpcStream) Send(p []byte) error { return s.st.Send(&echopb.Payload{Data: p}) }
func (s *grpcStream) Recv() (int, error) {
	if err := s.st.RecvMsg(&s.in); err != nil {
		return 0, err
	}
	return len(s.in.Data), nil
}
func (s *grpcStream) CloseSend() error { return s.st.CloseSend() }
func (s *grpcStream) Close()           { s.cancel() }
