package stack_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"
)

type Greeter struct{}

type Hello struct {
	Name string `json:"name"`
}

func (Greeter) Greet(_ context.Context, h *Hello) (*Hello, error) {
	return &Hello{Name: "hello, " + h.Name}, nil
}

// A server and a client assembled from one kite.hcl, finding each other
// through the local registry.
func Example() {
	dir, _ := os.MkdirTemp("", "stack-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "kite.hcl")
	_ = os.WriteFile(path, []byte(`
registry "local" "main" {
  dir = "`+filepath.Join(dir, "registry")+`"
}
server "greeter" {
  listen   = "127.0.0.1:0"
  registry = "main"
}
client "greeter" {
  registry = "main"
  timeout  = "2s"
}
`), 0o644)

	st, err := stack.Load(path, stack.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	ready := make(chan spi.Instance, 1)
	done := make(chan error, 1)
	go func() {
		done <- st.ServeNotify(ctx, "greeter",
			func(s *core.Server) error { return s.Register("Greeter", Greeter{}) },
			func(in spi.Instance) { ready <- in })
	}()
	<-ready // listening and registered

	c, err := st.Client("greeter")
	if err != nil {
		fmt.Println(err)
		return
	}
	var out Hello
	if err := c.Call(context.Background(), "Greeter.Greet", &Hello{Name: "kite"}, &out); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.Name)

	stop() // deregister, then drain and stop
	fmt.Println("serve:", <-done)
	// Output:
	// hello, kite
	// serve: <nil>
}
