// Command userservice is Kite's UserService example: the seed's
// interface, typed stubs generated from it by `kite gen`, and a program
// that serves it or calls it.
//
//	go run ./examples/userservice -mode server -addr 127.0.0.1:9000
//	go run ./examples/userservice -mode client -addr 127.0.0.1:9000 -id 1001
//
// In client mode, the call is an ordinary method call on the UserService
// interface — users.GetByID(ctx, 1001) — made remote by the generated
// client.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kiterpc/kite/core"
	_ "github.com/kiterpc/kite/plugins/codec-json" // the JSON codec both sides speak
	"github.com/kiterpc/kite/spi"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("userservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", "", "`server` or `client`")
	addr := fs.String("addr", "127.0.0.1:9000", "address to listen on (server) or call (client)")
	id := fs.Int64("id", 1001, "client: the user id to look up")
	list := fs.String("list", "", "client: also stream the users whose name starts with this `prefix` (\"*\" for all)")
	timeout := fs.Duration("timeout", 2*time.Second, "client: deadline of each call")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch *mode {
	case "server":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := serve(ctx, *addr, func(a string) { fmt.Fprintf(stdout, "serving UserService on %s\n", a) }); err != nil {
			fmt.Fprintln(stderr, "userservice:", err)
			return 1
		}
		return 0
	case "client":
		if err := callOnce(*addr, *id, *list, *timeout, stdout); err != nil {
			fmt.Fprintln(stderr, "userservice:", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintln(stderr, "userservice: -mode must be server or client")
		fs.Usage()
		return 2
	}
}

// newServer returns a server with the generated, reflection-free
// UserService registration.
func newServer(impl UserService) (*core.Server, error) {
	srv, err := core.NewServer(core.ServerOptions{})
	if err != nil {
		return nil, err
	}
	if err := RegisterUserService(srv, impl); err != nil {
		return nil, err
	}
	return srv, nil
}

// serve runs the server on addr until ctx ends, then shuts it down
// gracefully (GOAWAY, drain, close).
func serve(ctx context.Context, addr string, ready func(addr string)) error {
	srv, err := newServer(newStore())
	if err != nil {
		return err
	}
	ln, err := srv.Listen(ctx, addr)
	if err != nil {
		return err
	}
	ready(ln.Addr().String())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// callOnce looks up one user (and optionally lists some) through the
// generated client.
func callOnce(addr string, id int64, prefix string, timeout time.Duration, stdout io.Writer) error {
	c, err := core.NewClient(core.ClientOptions{Targets: []string{addr}, Timeout: timeout})
	if err != nil {
		return err
	}
	defer c.Close()
	users := NewUserServiceClient(c)

	ctx := context.Background()
	u, err := users.GetByID(ctx, id)
	if err != nil {
		if errors.Is(err, spi.ErrNotFound) {
			return fmt.Errorf("user %d does not exist: %w", id, err)
		}
		return err
	}
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(u); err != nil {
		return err
	}
	if prefix == "" {
		return nil
	}
	if prefix == "*" {
		prefix = ""
	}
	return users.List(ctx, &ListQuery{Prefix: prefix}, func(u *User) error { return enc.Encode(u) })
}
