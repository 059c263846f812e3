package ops

// The processes of the signal tests: the test binary re-executed with
// KITE_OPS_ROLE=server or client. They talk to the test through stdout
// lines: "READY <addr>", window reports, "DONE <json>".

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"
)

// Environment of a role process.
const (
	envConfig = "KITE_OPS_CONFIG" // kite.hcl path
	envBlock  = "KITE_OPS_BLOCK"  // server or client block name
	envKey    = "KITE_OPS_KEY"    // client: affinity key of every call
)

func runRole(role string) int {
	log := hclog.New(&hclog.LoggerOptions{Name: role, Level: hclog.Warn, Output: os.Stderr})
	switch role {
	case "server":
		return runServer(log)
	case "client":
		return runClient(log)
	}
	fmt.Fprintf(os.Stderr, "unknown %s %q\n", roleEnv, role)
	return 2
}

// runServer serves the block until SIGTERM, then deregisters and drains
// (stack.Serve) and exits 0 on a clean drain.
func runServer(log hclog.Logger) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	st, err := stack.Load(os.Getenv(envConfig), stack.WithLogger(log))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Close()
	name := os.Getenv(envBlock)
	err = st.ServeNotify(ctx, name, func(s *core.Server) error { return s.Register("Echo", &echo{name: name}) },
		func(in spi.Instance) { fmt.Printf("READY %s\n", in.Addr) })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := st.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// window is what the client reports every 100 ms: calls answered by each
// server and failures in that window.
type window struct {
	By   map[string]int `json:"by"`
	Fail int            `json:"fail"`
}

// total is the client's final report.
type total struct {
	OK     int64    `json:"ok"`
	Fail   int64    `json:"fail"`
	Errors []string `json:"errors,omitempty"`
}

// runClient calls Echo.Echo from 4 workers, every call with the same
// affinity key, reloads kite.hcl on SIGHUP and stops on SIGTERM.
func runClient(log hclog.Logger) int {
	// Take SIGHUP over before anything else: a signal arriving before
	// HandleSIGHUP's goroutine subscribed must not kill the process.
	early := make(chan os.Signal, 1)
	signal.Notify(early, syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	path := os.Getenv(envConfig)
	st, err := stack.Load(path, stack.WithLogger(log))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Close()
	go stack.HandleSIGHUP(ctx, st, path)
	c, err := st.Client(os.Getenv(envBlock))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	var (
		mu     sync.Mutex
		cur    = window{By: map[string]int{}}
		tot    total
		okN    atomic.Int64
		failN  atomic.Int64
		wg     sync.WaitGroup
		callCx = spi.WithAffinityKey(context.Background(), os.Getenv(envKey))
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				var r EchoResp
				err := c.Call(callCx, "Echo.Echo", &EchoReq{Text: fmt.Sprintf("%d-%d", w, i)}, &r)
				mu.Lock()
				if err != nil {
					cur.Fail++
					failN.Add(1)
					if len(tot.Errors) < 10 {
						tot.Errors = append(tot.Errors, err.Error())
					}
				} else {
					cur.By[r.Server]++
					okN.Add(1)
				}
				mu.Unlock()
			}
		}()
	}
	fmt.Println("READY")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			mu.Lock()
			w := cur
			cur = window{By: map[string]int{}}
			mu.Unlock()
			b, _ := json.Marshal(w)
			fmt.Printf("WINDOW %s\n", b)
		}
	}
	wg.Wait()
	tot.OK, tot.Fail = okN.Load(), failN.Load()
	b, _ := json.Marshal(tot)
	fmt.Printf("DONE %s\n", b)
	return 0
}
