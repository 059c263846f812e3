package static_test

import (
	"context"
	"fmt"

	static "github.com/kiterpc/kite/plugins/registry-static"
	"github.com/kiterpc/kite/spi"
)

// A client's registry lists its servers; a weight steers more traffic to
// the bigger one.
func Example() {
	reg, err := static.New(static.Config{
		Addrs:   []string{"127.0.0.1:9000", "127.0.0.1:9001"},
		Weights: map[string]static.Weight{"127.0.0.1:9001": 300},
	})
	if err != nil {
		panic(err)
	}
	defer reg.Close()

	instances, _ := reg.Resolve(context.Background(), "user")
	for _, in := range instances {
		fmt.Println(in)
	}
	// Output:
	// user@127.0.0.1:9000 w=100
	// user@127.0.0.1:9001 w=300
}

// A server and a client in one process find each other through a shared
// group, without any external store.
func Example_inProcess() {
	ctx := context.Background()
	server, _ := static.New(static.Config{Group: "demo"})
	client, _ := static.New(static.Config{Group: "demo"})
	defer client.Close()

	w, _ := client.Watch(ctx, "echo")
	defer w.Stop()
	snap, _ := w.Next(ctx)
	fmt.Println(len(snap), "instances")

	_ = server.Register(ctx, spi.Instance{Service: "echo", Addr: "127.0.0.1:7000", Zone: "a"})
	snap, _ = w.Next(ctx)
	fmt.Println(snap)

	_ = server.Close() // withdraws the registration
	snap, _ = w.Next(ctx)
	fmt.Println(len(snap), "instances")
	// Output:
	// 0 instances
	// [echo@127.0.0.1:7000 w=100 zone=a]
	// 0 instances
}
