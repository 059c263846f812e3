package local_test

import (
	"context"
	"fmt"
	"os"

	local "github.com/kiterpc/kite/plugins/registry-local"
	"github.com/kiterpc/kite/spi"
)

// A server process registers; any process on the machine using the same
// directory resolves it.
func Example() {
	dir, _ := os.MkdirTemp("", "kite-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	server, _ := local.New(local.Config{Dir: dir})
	_ = server.Register(ctx, spi.Instance{Service: "echo", Addr: "127.0.0.1:7000", Version: "v1"})

	client, _ := local.New(local.Config{Dir: dir})
	defer client.Close()
	instances, _ := client.Resolve(ctx, "echo")
	fmt.Println(instances)

	_ = server.Close() // withdraws the registration
	instances, _ = client.Resolve(ctx, "echo")
	fmt.Println(len(instances), "instances")
	// Output:
	// [echo@127.0.0.1:7000 w=100 v=v1]
	// 0 instances
}
