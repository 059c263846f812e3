// Command server is the swap-registry example's echo server. Everything
// about where it listens and which registry announces it comes from the
// kite.hcl given with -f: the same binary runs on the local registry,
// ZooKeeper or etcd.
//
//	server -f kite-local.hcl
//
// It prints "serving <addr> pid=<pid>" once it is registered, stops
// gracefully on SIGINT/SIGTERM (deregister, then drain) and reloads the
// client-side settings of kite.hcl on SIGHUP.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"

	// The implementations the example's files may name.
	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
	_ "github.com/kiterpc/kite/plugins/registry-consul"
	_ "github.com/kiterpc/kite/plugins/registry-etcd"
	_ "github.com/kiterpc/kite/plugins/registry-local"
	_ "github.com/kiterpc/kite/plugins/registry-zk"
)

// Request and Reply are the echo service's messages.
type Request struct {
	Text string `json:"text"`
}

type Reply struct {
	Text string `json:"text"`
	// Addr and PID identify the instance that answered.
	Addr string `json:"addr"`
	PID  int    `json:"pid"`
}

// echo answers with the address it was announced under (known once the
// listener is bound, so it is set while calls may already arrive).
type echo struct{ addr atomic.Pointer[string] }

func (e *echo) Echo(_ context.Context, r *Request) (*Reply, error) {
	addr := ""
	if a := e.addr.Load(); a != nil {
		addr = *a
	}
	return &Reply{Text: r.Text, Addr: addr, PID: os.Getpid()}, nil
}

func main() {
	file := flag.String("f", "kite.hcl", "kite.hcl `file`")
	flag.Parse()
	log := hclog.New(&hclog.LoggerOptions{Name: "server", Level: hclog.Info, Output: os.Stderr})
	if err := run(*file, log); err != nil {
		log.Error("server failed", "error", err)
		os.Exit(1)
	}
}

func run(file string, log hclog.Logger) error {
	st, err := stack.Load(file, stack.WithLogger(log))
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go stack.HandleSIGHUP(ctx, st, file)

	svc := &echo{}
	return st.ServeNotify(ctx, "echo",
		func(s *core.Server) error { return s.Register("Echo", svc) },
		func(in spi.Instance) {
			svc.addr.Store(&in.Addr)
			fmt.Printf("serving %s pid=%d\n", in.Addr, os.Getpid())
		})
}
