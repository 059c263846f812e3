// Command client is the swap-registry example's client: it finds the
// echo service through the registry its kite.hcl names (-f), logs the
// instances the registry resolved, and makes -n calls, printing which
// instance answered each. The same binary works with every registry.
//
//	client -f kite-zk.hcl -n 3
//
// Exit status: 0 when every call succeeded, 1 otherwise.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"

	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
	_ "github.com/kiterpc/kite/plugins/registry-etcd"
	_ "github.com/kiterpc/kite/plugins/registry-local"
	_ "github.com/kiterpc/kite/plugins/registry-zk"
)

type Request struct {
	Text string `json:"text"`
}

type Reply struct {
	Text string `json:"text"`
	Addr string `json:"addr"`
	PID  int    `json:"pid"`
}

func main() {
	file := flag.String("f", "kite.hcl", "kite.hcl `file`")
	n := flag.Int("n", 3, "number of calls")
	wait := flag.Duration("wait", 5*time.Second, "how long to wait for the registry to list an instance")
	flag.Parse()
	log := hclog.New(&hclog.LoggerOptions{Name: "client", Level: hclog.Warn, Output: os.Stderr})
	if err := run(*file, *n, *wait, log); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

func run(file string, n int, wait time.Duration, log hclog.Logger) error {
	st, err := stack.Load(file, stack.WithLogger(log))
	if err != nil {
		return err
	}
	defer st.Close()
	cfg, _ := st.File().Client("echo")
	c, err := st.Client("echo")
	if err != nil {
		return err
	}
	// Show what the registry resolved: the client's balancer works from
	// the registry's watch, so these are the addresses calls can go to.
	reg, err := st.Registry(cfg.Registry)
	if err != nil {
		return err
	}
	var ins []spi.Instance
	deadline := time.Now().Add(wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ins, err = reg.Resolve(ctx, cfg.Service)
		cancel()
		if err == nil && len(ins) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling an external registry for a first instance
	}
	if err != nil {
		return fmt.Errorf("resolving %q: %w", cfg.Service, err)
	}
	addrs := make([]string, 0, len(ins))
	for _, in := range ins {
		addrs = append(addrs, in.Addr)
	}
	fmt.Printf("registry %s resolved %s: %v\n", cfg.Registry, cfg.Service, addrs)
	if len(ins) == 0 {
		return fmt.Errorf("no instance of %q registered within %s", cfg.Service, wait)
	}
	for i := range n {
		var r Reply
		if err := c.Call(context.Background(), "Echo.Echo", &Request{Text: fmt.Sprintf("hello %d", i)}, &r); err != nil {
			return fmt.Errorf("call %d: %w", i, err)
		}
		fmt.Printf("call %d: %q answered by %s pid=%d\n", i, r.Text, r.Addr, r.PID)
	}
	return nil
}
