package nacos_test

import (
	"context"
	"fmt"
	"time"

	nacos "github.com/kiterpc/kite/plugins/registry-nacos"
	"github.com/kiterpc/kite/plugins/registry-nacos/nacostest"
	"github.com/kiterpc/kite/spi"
)

// A server registers with Nacos and a client resolves it. The example runs
// against the in-process double; point Servers at a real Nacos the same way.
func Example() {
	srv := nacostest.NewServer(nacostest.Options{})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	reg, err := nacos.New(nacos.Config{Servers: []string{srv.URL}, Group: "KITE"})
	if err != nil {
		panic(err)
	}
	defer reg.Close() // deregisters

	err = reg.Register(ctx, spi.Instance{Service: "user", Addr: "127.0.0.1:9000", Weight: 50, Version: "v2"})
	if err != nil {
		panic(err)
	}
	list, err := reg.Resolve(ctx, "user")
	if err != nil {
		panic(err)
	}
	for _, in := range list {
		fmt.Println(in)
	}
	stored := srv.Instances("", "KITE@@user")[0]
	fmt.Println(stored.InstanceID, stored.Weight)
	// Output:
	// user@127.0.0.1:9000 w=50 v=v2
	// 127.0.0.1#9000#DEFAULT#KITE@@user 0.5
}
