package plugin_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

// A host loads a registry plugin declared in kite.hcl and uses it through
// the catalog like a compiled-in one.
func ExampleLoad() {
	path := "./bin/kite-registry-zk"
	if _, err := os.Stat(path); err != nil {
		fmt.Println("build the plugins first: make plugins")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	entry, proc, err := plugin.Load(ctx, plugin.Decl{
		Kind:   spi.KindRegistry,
		Name:   "zk",
		Path:   path,
		SHA256: "…the output of sha256sum…",
	}, hclog.Default())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer proc.Close()

	var cat spi.Catalog
	_ = cat.Add(entry)
	reg, err := cat.BuildRegistry("zk", spi.Config(`{"servers":["127.0.0.1:2181"]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close()
	ins, err := reg.Resolve(ctx, "user")
	fmt.Println(len(ins), err)
	// Output: build the plugins first: make plugins
}

// A balancer's picking table is used in process: picks walk the schedule
// lock-free, and calls with an affinity key go to the ring.
func ExampleNewTablePicker() {
	ins := []spi.Instance{{Service: "s", Addr: "a:1"}, {Service: "s", Addr: "b:1"}}
	p, err := plugin.NewTablePicker(ins, spi.PickTable{Schedule: []int{0, 0, 1}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 6 {
		r, _ := p.Pick(context.Background(), spi.PickInfo{})
		fmt.Print(r.Instance.Addr, " ")
	}
	fmt.Println()
	// Output: a:1 a:1 b:1 a:1 a:1 b:1
}
