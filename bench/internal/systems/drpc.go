package systems

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/kiterpc/kite/bench/echopb"
	"storj.io/drpc/drpcconn"
	"storj.io/drpc/drpcmux"
	"storj.io/drpc/drpcserver"
)

func init() {
	register(System{Name: "drpc", Doc: "drpc v1.0.0, protobuf, one connection per caller (drpc runs one RPC per connection at a time)",
		Serve: serveDRPC, Dial: dialDRPC})
}

type drpcEcho struct {
	echopb.DRPCEchoUnimplementedServer
}

func (drpcEcho) Echo(_ context.Context, in *echopb.Payload) (*echopb.Payload, error) {
	return in, nil
}

type drpcServer struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (d drpcServer) Close() error {
	d.cancel()
	<-d.done
	return nil
}

func serveDRPC(ln net.Listener) (Server, error) {
	mux := drpcmux.New()
	if err := echopb.DRPCRegisterEcho(mux, &drpcEcho{}); err != nil {
		return nil, err
	}
	srv := drpcserver.New(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, ln)
	}()
	return drpcServer{cancel: cancel, done: done}, nil
}

// drpcClient keeps one connection per caller, dialed on first use.
type drpcClient struct {
	addr  string
	mu    sync.Mutex
	conns []*drpcconn.Conn
	cls   []echopb.DRPCEchoClient
}

func dialDRPC(addr string, conc int) (Client, error) {
	return &drpcClient{addr: addr, conns: make([]*drpcconn.Conn, conc), cls: make([]echopb.DRPCEchoClient, conc)}, nil
}

func (d *drpcClient) client(worker int) (echopb.DRPCEchoClient, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if worker < 0 || worker >= len(d.cls) {
		return nil, errors.New("drpc: worker index out of range")
	}
	if c := d.cls[worker]; c != nil {
		return c, nil
	}
	nc, err := net.Dial("tcp", d.addr)
	if err != nil {
		return nil, err
	}
	conn := drpcconn.New(nc)
	d.conns[worker] = conn
	d.cls[worker] = echopb.NewDRPCEchoClient(conn)
	return d.cls[worker], nil
}

func (d *drpcClient) Echo(ctx context.Context, worker int, payload []byte) (int, error) {
	c, err := d.client(worker)
	if err != nil {
		return 0, err
	}
	out, err := c.Echo(ctx, &echopb.Payload{Data: payload})
	if err != nil {
		return 0, err
	}
	return len(out.Data), nil
}

func (d *drpcClient) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		if c != nil {
			_ = c.Close()
		}
	}
	return nil
}
