package zookeeper_test

import (
	"context"
	"fmt"
	"log"

	zookeeper "github.com/kiterpc/kite/plugins/registry-zk"
	"github.com/kiterpc/kite/spi"
)

// A server registers itself; a client follows the service. (Not run by
// go test: it needs a ZooKeeper on 127.0.0.1:2181.)
func Example() {
	ctx := context.Background()
	server, err := zookeeper.New(zookeeper.Config{Servers: []string{"127.0.0.1:2181"}})
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close() // ends the session: the instance disappears at once
	if err := server.Register(ctx, spi.Instance{Service: "user", Addr: "10.0.0.5:9000", Zone: "a"}); err != nil {
		log.Fatal(err)
	}

	client, err := zookeeper.New(zookeeper.Config{Servers: []string{"127.0.0.1:2181"}, SessionTimeout: "5s"})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	w, err := client.Watch(ctx, "user")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Stop()
	for {
		instances, err := w.Next(ctx) // the current set, then every change
		if err != nil {
			return
		}
		fmt.Println(instances)
	}
}
