package systems

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/bench/echopb"
	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/spi"

	jsoncodec "github.com/kiterpc/kite/plugins/codec-json"
	protocodec "github.com/kiterpc/kite/plugins/codec-proto"
	"github.com/kiterpc/kite/plugins/compress-zstd"
)

func init() {
	register(System{Name: "kite", Doc: "Kite, protobuf codec, one multiplexed connection",
		Serve: serveKite, Dial: func(addr string, _ int) (Client, error) { return dialKite(addr, protocodec.New(), nil) }})
	register(System{Name: "kite-json", Doc: "Kite, JSON codec (encoding/json), one multiplexed connection",
		Serve: serveKite, Dial: func(addr string, _ int) (Client, error) { return dialKite(addr, jsoncodec.New(), nil) }})
	register(System{Name: "kite-zstd", Doc: "Kite, protobuf codec, zstd compression of bodies ≥ 1 KiB",
		Serve: serveKite, Dial: func(addr string, _ int) (Client, error) { return dialKite(addr, protocodec.New(), zstd.New()) }})
	register(System{Name: "kite-default", Doc: "Kite as README.md sets it up: kite.NewServer/kite.NewClient with zero options (default codec, balancer, logger, limits)",
		Serve: serveKiteDefault, Dial: dialKiteDefault})
	register(System{Name: "kite-tls", Doc: "Kite, protobuf codec, over TLS 1.3 (self-signed ECDSA P-256 certificate; the client skips verification)",
		Serve: serveKiteTLS, Dial: dialKiteTLS})
}

type kiteEcho struct{}

func (kiteEcho) Echo(_ context.Context, in *echopb.Payload) (*echopb.Payload, error) {
	return in, nil
}

func (kiteEcho) Stream(_ context.Context, st *core.Stream) error {
	var p echopb.Payload
	for {
		if err := st.Recv(&p); err != nil {
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

type kiteServer struct{ s *core.Server }

func (k kiteServer) Close() error { return k.s.Close() }

// serveKite serves every Kite variant: the server answers in the codec
// and compressor the caller used, as linked into this binary.
func serveKite(ln net.Listener) (Server, error) {
	s, err := core.NewServer(core.ServerOptions{
		Logger:             hclog.NewNullLogger(),
		MaxConnConcurrency: 100000,
		MaxConcurrency:     100000,
	})
	if err != nil {
		return nil, err
	}
	if err := echopb.RegisterKiteEcho(s, kiteEcho{}); err != nil {
		return nil, err
	}
	go func() { _ = s.Serve(ln) }()
	return kiteServer{s}, nil
}

type kiteClient struct {
	c  *core.Client
	ec echopb.KiteEchoClient
}

func dialKite(addr string, codec spi.Codec, comp spi.Compressor) (Client, error) {
	return dialKiteWith(core.ClientOptions{
		Targets:    []string{addr},
		Codec:      codec,
		Compressor: comp,
		Logger:     hclog.NewNullLogger(),
	})
}

func dialKiteWith(opts core.ClientOptions) (Client, error) {
	c, err := core.NewClient(opts)
	if err != nil {
		return nil, err
	}
	return &kiteClient{c: c, ec: echopb.KiteEchoClient{C: c}}, nil
}

func (k *kiteClient) Echo(ctx context.Context, _ int, payload []byte) (int, error) {
	out, err := k.ec.Echo(ctx, &echopb.Payload{Data: payload})
	if err != nil {
		return 0, err
	}
	return len(out.Data), nil
}

func (k *kiteClient) Close() error { return k.c.Close() }

func (k *kiteClient) OpenStream(ctx context.Context) (Stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	st, err := k.ec.Stream(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	return &kiteStream{st: st, cancel: cancel}, nil
}

type kiteStream struct {
	st     *core.Stream
	cancel context.CancelFunc
	in     echopb.Payload
}

func (s *kiteStream) Send(p []byte) error { return s.st.Send(&echopb.Payload{Data: p}) }
func (s *kiteStream) Recv() (int, error) {
	if err := s.st.Recv(&s.in); err != nil {
		return 0, err
	}
	return len(s.in.Data), nil
}
func (s *kiteStream) CloseSend() error { return s.st.CloseSend() }
func (s *kiteStream) Close()           { s.cancel() }
