package consul_test

import (
	"context"
	"fmt"
	"time"

	consul "github.com/kiterpc/kite/plugins/registry-consul"
	"github.com/kiterpc/kite/plugins/registry-consul/consultest"
	"github.com/kiterpc/kite/spi"
)

// A server registers itself; a client watches the service with blocking
// queries. The in-process double stands in for a Consul agent here; give
// the agent's address (e.g. "127.0.0.1:8500") instead.
func Example() {
	agent := consultest.NewServer(consultest.Options{})
	defer agent.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	server, err := consul.New(consul.Config{Address: agent.Addr(), CheckTTL: "10s"})
	if err != nil {
		panic(err)
	}
	defer server.Close() // deregisters: the instance disappears at once
	client, err := consul.New(consul.Config{Address: agent.Addr()})
	if err != nil {
		panic(err)
	}
	defer client.Close()

	if err := server.Register(ctx, spi.Instance{Service: "user", Addr: "127.0.0.1:9000", Version: "v1", Tags: []string{"blue"}}); err != nil {
		panic(err)
	}
	w, err := client.Watch(ctx, "user")
	if err != nil {
		panic(err)
	}
	defer w.Stop()
	list, err := w.Next(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(list, list[0].Tags)
	// Output: [user@127.0.0.1:9000 w=100 v=v1] [blue]
}
