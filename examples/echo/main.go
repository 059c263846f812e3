// Command echo is Kite's smallest complete example: an Echo service and a
// client that find each other through the embedded `local` registry (a
// directory of files on this machine), and exercise every call style:
// sync, async, one-way, a server stream, and a deadline that expires.
// Both sides are assembled from the repository's kite.hcl (its server
// "echo" and client "echo" blocks): edit the file, not the code.
//
//	go run ./examples/echo server &        # serves kite.hcl's server "echo", registers it
//	go run ./examples/echo client          # calls through kite.hcl's client "echo"
//
// `make demo` runs both and prints what happened.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite"
	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"

	// The implementations kite.hcl names, linked in.
	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/filter-log"
	_ "github.com/kiterpc/kite/plugins/filter-recover"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
	_ "github.com/kiterpc/kite/plugins/registry-local"
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
	addr atomic.Value // string: the address clients dial, set once serving
}

func (e *Echo) server() string {
	a, _ := e.addr.Load().(string)
	return a
}

// Say answers with the request's text.
func (e *Echo) Say(ctx context.Context, r *SayRequest) (*SayReply, error) {
	if r.Text == "" {
		return nil, kite.Errorf(kite.InvalidArgument, "text must not be empty")
	}
	return &SayReply{Text: r.Text, Server: e.server()}, nil
}

// Slow takes a second, or less if the caller gives up first.
func (e *Echo) Slow(ctx context.Context, r *SayRequest) (*SayReply, error) {
	select {
	case <-time.After(time.Second):
		return &SayReply{Text: "finally: " + r.Text, Server: e.server()}, nil
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
		if err := st.Send(&SayReply{Text: string(ch), Server: e.server()}); err != nil {
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

// loadStack reads the kite.hcl that describes both sides: the server
// block "echo" (listen address, registry, filters, limits) and the
// client block "echo" (registry, balancer, timeout, retry, pool).
func loadStack(path string) (*stack.Stack, error) {
	log := hclog.New(&hclog.LoggerOptions{Name: "echo", Level: hclog.Warn})
	st, err := stack.Load(path, stack.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w (run from the repository root, or pass -config)", path, err)
	}
	return st, nil
}

func runServer(args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	config := fs.String("config", "kite.hcl", "kite.hcl whose server \"echo\" block to serve")
	_ = fs.Parse(args)

	st, err := loadStack(*config)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	echo := &Echo{}
	// Serve listens, registers the instance only once it accepts calls,
	// and on SIGTERM deregisters first, then drains (GOAWAY).
	err = st.ServeNotify(ctx, "echo",
		func(s *core.Server) error { return s.Register("Echo", echo) },
		func(in spi.Instance) {
			echo.addr.Store(in.Addr)
			fmt.Printf("server: Echo serving on %s, registered as %q (%s)\n", in.Addr, in.Service, *config)
		})
	if err != nil {
		return err
	}
	fmt.Println("server: shut down gracefully")
	return nil
}

func runClient(args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	config := fs.String("config", "kite.hcl", "kite.hcl whose client \"echo\" block to call through")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for a server to appear")
	_ = fs.Parse(args)

	st, err := loadStack(*config)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := st.Client("echo")
	if err != nil {
		return err
	}
	ctx := context.Background()

	// The demo starts server and client at once: wait until the server
	// has registered and answers.
	deadline := time.Now().Add(*wait)
	for {
		var r SayReply
		err := c.Call(ctx, "Echo.Say", &SayRequest{Text: "ping"}, &r)
		if err == nil {
			fmt.Printf("client: found echo at %s\n", r.Server)
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no echo server answered within %s: %w", *wait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

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
	spell, err := c.Stream(ctx, "Echo.Spell")
	if err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	if err := spell.Send(&SayRequest{Text: "kite"}); err != nil {
		return err
	}
	_ = spell.CloseSend()
	var letters []string
	for {
		var m SayReply
		err := spell.Recv(&m)
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
