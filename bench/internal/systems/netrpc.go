package systems

import (
	"context"
	"net"
	"net/rpc"
	"sync"
)

func init() {
	register(System{Name: "netrpc", Doc: "net/rpc from the standard library, gob, one connection",
		Serve: serveNetRPC, Dial: dialNetRPC})
}

// NetEcho is the net/rpc service; exported because net/rpc requires it.
type NetEcho struct{}

// EchoMsg is net/rpc's request and response.
type EchoMsg struct{ Data []byte }

// Echo answers the payload.
func (NetEcho) Echo(in *EchoMsg, out *EchoMsg) error {
	out.Data = in.Data
	return nil
}

type netrpcServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func (s *netrpcServer) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func serveNetRPC(ln net.Listener) (Server, error) {
	rs := rpc.NewServer()
	if err := rs.RegisterName("Echo", NetEcho{}); err != nil {
		return nil, err
	}
	s := &netrpcServer{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				rs.ServeConn(c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s, nil
}

type netrpcClient struct{ c *rpc.Client }

func dialNetRPC(addr string, _ int) (Client, error) {
	c, err := rpc.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return netrpcClient{c}, nil
}

// Echo uses Call, as net/rpc users do; net/rpc has no context, and the
// benchmark never cancels calls.
func (n netrpcClient) Echo(_ context.Context, _ int, payload []byte) (int, error) {
	var out EchoMsg
	err := n.c.Call("Echo.Echo", &EchoMsg{Data: payload}, &out)
	return len(out.Data), err
}

func (n netrpcClient) Close() error { return n.c.Close() }
