// Command client is the swap-registry example's client: it finds the
// echo service through the registry its kite.hcl names (-f), logs the
// instances the registry resolved, and makes -n calls, printing which
// instance answered each. The same binary works with every registry.
//
//	client -f kite-zk.hcl -n 3
//
// With -watch it keeps calling (every -every) until SIGINT or SIGTERM,
// and SIGHUP re-reads the file: edit its registry block (say, paste
// kite-zk.hcl over kite-local.hcl) and `kill -HUP` the client, and the
// calls move to the instances of the new registry without a restart.
//
// Exit status: 0 when every call succeeded, 1 otherwise.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"

	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
	_ "github.com/kiterpc/kite/plugins/registry-consul"
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
	watch := flag.Bool("watch", false, "keep calling until SIGINT/SIGTERM; SIGHUP reloads the file")
	every := flag.Duration("every", 100*time.Millisecond, "with -watch, the pause between calls")
	flag.Parse()
	log := hclog.New(&hclog.LoggerOptions{Name: "client", Level: hclog.Warn, Output: os.Stderr})
	if *watch {
		*n = -1
	}
	if err := run(*file, *n, *wait, *every, log); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

func run(file string, n int, wait, every time.Duration, log hclog.Logger) error {
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
	if n < 0 {
		return watch(st, c, file, every)
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

// watch calls every period until SIGINT/SIGTERM and reloads file on
// SIGHUP, printing what the reload applied. It fails if any call failed.
func watch(st *stack.Stack, c *core.Client, file string, every time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(every)
	defer tick.Stop()
	failed := 0
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			if failed > 0 {
				return fmt.Errorf("%d of %d calls failed", failed, i)
			}
			return nil
		case <-hup:
			rep, err := st.ReloadReport(file)
			if err != nil {
				fmt.Printf("reload failed, settings kept: %v\n", err)
				continue
			}
			for _, a := range rep.Applied {
				fmt.Printf("reload applied: %s\n", a)
			}
			for _, r := range rep.NeedRestart {
				fmt.Printf("reload needs a restart: %s\n", r)
			}
		case <-tick.C:
			var r Reply
			if err := c.Call(ctx, "Echo.Echo", &Request{Text: fmt.Sprintf("hello %d", i)}, &r); err != nil {
				if ctx.Err() == nil {
					failed++
					fmt.Printf("call %d failed: %v\n", i, err)
				}
				continue
			}
			fmt.Printf("call %d: %q answered by %s pid=%d\n", i, r.Text, r.Addr, r.PID)
		}
	}
}
