// Command echo is Kite's smallest complete example: an Echo service and a
// client that find each other through the embedded `local` registry (a
// directory of files on this machine), and exercise every call style:
// sync, async, one-way, a server stream, and a deadline that expires.
//
//	go run ./examples/echo server &        # registers in the local registry
//	go run ./examples/echo client          # resolves it and calls it
//
// `make demo` runs both and prints what happened.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite"
	"github.com/kiterpc/kite/spi"

	localreg "github.com/kiterpc/kite/plugins/registry-local"
)

// SayRequest and SayReply are the Echo service's messages.
type SayRequest struct {
	Text string `json:"text"`
}

// SayReply answers a SayRequest.
type SayReply struct {
	Text   string `json:"text"`
	Server string `json:"server"`
}

// Echo is the service.
type Echo struct {
	addr string
}

// Say answers with the request's text.
func (e *Echo) Say(ctx context.Context, r *SayRequest) (*SayReply, error) {
	if r.Text == "" {
		return nil, kite.Errorf(kite.InvalidArgument, "text must not be empty")
	}
	return &SayReply{Text: r.Text, Server: e.addr}, nil
}

// Slow takes a second, or less if the caller gives up first.
func (e *Echo) Slow(ctx context.Context, r *SayRequest) (*SayReply, error) {
	select {
	case <-time.After(time.Second):
		return &SayReply{Text: "finally: " + r.Text, Server: e.addr}, nil
	case <-ctx.Done():
		fmt.Printf("server: Slow(%q) stopped early: %v\n", r.Text, ctx.Err())
		return nil, ctx.Err()
	}
}

// Note is called one-way: it returns nothing to the caller.
func (e *Echo) Note(ctx context.Context, r *SayRequest) (*SayReply, error) {
	fmt.Printf("server: one-way note: %q\n", r.Text)
	return nil, nil
}

// Spell streams the request's text back one letter per message.
func (e *Echo) Spell(ctx context.Context, st *kite.Stream) error {
	var r SayRequest
	if err := st.Recv(&r); err != nil {
		return err
	}
	for _, ch := range r.Text {
		if err := st.Send(&SayReply{Text: string(ch), Server: e.addr}); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: echo server|client [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "server":
		err = runServer(os.Args[2:])
	case "client":
		err = runClient(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "echo: unknown mode %q (want server or client)\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

func registry(dir string) (*localreg.Registry, error) {
	return localreg.New(localreg.Config{Dir: dir, TTL: "3s", PollInterval: "50ms"})
}

func runServer(args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	dir := fs.String("registry-dir", "", "local registry directory (default: the per-user one)")
	_ = fs.Parse(args)

	log := hclog.New(&hclog.LoggerOptions{Name: "echo", Level: hclog.Warn})
	srv, err := kite.NewServer(kite.ServerOptions{Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	if err := srv.Register("Echo", &Echo{addr: addr}); err != nil {
		return err
	}
	go func() { _ = srv.Serve(ln) }()
	reg, err := registry(*dir)
	if err != nil {
		return err
	}
	defer reg.Close()
	inst := spi.Instance{Service: "echo", Addr: addr, Weight: 100, Version: "1"}
	// Register only once serving: a client that finds us can call at once.
	if err := reg.Register(ctx, inst); err != nil {
		return err
	}
	fmt.Printf("server: Echo serving on %s, registered in %s\n", addr, reg.Dir())
	<-ctx.Done()
	// Deregister first so clients stop picking us, then drain.
	_ = reg.Deregister(context.Background(), inst)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	fmt.Println("server: shut down gracefully")
	return err
}

func runClient(args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	dir := fs.String("registry-dir", "", "local registry directory (default: the per-user one)")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for a server to appear")
	_ = fs.Parse(args)

	reg, err := registry(*dir)
	if err != nil {
		return err
	}
	defer reg.Close()
	ctx := context.Background()

	// Wait for the server to register (the demo starts both at once).
	deadline := time.Now().Add(*wait)
	for {
		ins, err := reg.Resolve(ctx, "echo")
		if err == nil && len(ins) > 0 {
			fmt.Printf("client: found %d instance(s) of echo: %s\n", len(ins), ins[0].Addr)
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no echo server registered in %s after %s", reg.Dir(), *wait)
		}
		time.Sleep(50 * time.Millisecond)
	}

	c, err := kite.NewClient(kite.ClientOptions{
		Service:  "echo",
		Registry: reg,
		Timeout:  2 * time.Second,
		Logger:   hclog.New(&hclog.LoggerOptions{Name: "echo", Level: hclog.Warn}),
	})
	if err != nil {
		return err
	}
	defer c.Close()

	// 1. Sync.
	var r SayReply
	start := time.Now()
	if err := c.Call(ctx, "Echo.Say", &SayRequest{Text: "hello, kite"}, &r); err != nil {
		return fmt.Errorf("sync call: %w", err)
	}
	fmt.Printf("client: sync   Echo.Say -> %q from %s in %s\n", r.Text, r.Server, time.Since(start).Round(time.Microsecond))

	// 2. Async: three calls in flight at once on one connection.
	futures := make([]*kite.Future, 3)
	for i := range futures {
		futures[i] = c.Go(ctx, "Echo.Say", &SayRequest{Text: fmt.Sprintf("async #%d", i+1)}, &SayReply{})
	}
	for _, f := range futures {
		if err := f.Wait(); err != nil {
			return fmt.Errorf("async call: %w", err)
		}
		fmt.Printf("client: async  Echo.Say -> %q\n", f.Response.(*SayReply).Text)
	}

	// 3. One-way: no answer, the server prints it.
	if err := c.OneWay(ctx, "Echo.Note", &SayRequest{Text: "fire and forget"}); err != nil {
		return fmt.Errorf("one-way call: %w", err)
	}
	fmt.Println("client: oneway Echo.Note sent")

	// 4. A server stream.
	st, err := c.Stream(ctx, "Echo.Spell")
	if err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	if err := st.Send(&SayRequest{Text: "kite"}); err != nil {
		return err
	}
	_ = st.CloseSend()
	var letters []string
	for {
		var m SayReply
		err := st.Recv(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("stream recv: %w", err)
		}
		letters = append(letters, m.Text)
	}
	fmt.Printf("client: stream Echo.Spell -> %s\n", strings.Join(letters, " "))

	// 5. A typed error from the server.
	err = c.Call(ctx, "Echo.Say", &SayRequest{}, &r)
	fmt.Printf("client: error  Echo.Say(\"\") -> code=%s message=%q (errors.Is InvalidArgument: %v)\n",
		kite.CodeOf(err), errMessage(err), errors.Is(err, kite.ErrInvalidArgument))

	// 6. A deadline that expires: 100 ms against a 1 s handler.
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = c.Call(dctx, "Echo.Slow", &SayRequest{Text: "too slow"}, &r)
	fmt.Printf("client: deadline Echo.Slow with 100ms -> code=%s after %s\n", kite.CodeOf(err), time.Since(start).Round(time.Millisecond))
	if kite.CodeOf(err) != kite.DeadlineExceeded {
		return fmt.Errorf("expected DeadlineExceeded, got %v", err)
	}
	return nil
}

func errMessage(err error) string {
	var ke *kite.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return fmt.Sprint(err)
}
