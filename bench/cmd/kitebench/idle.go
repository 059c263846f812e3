package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/bench/echopb"
	"github.com/kiterpc/kite/core"
	protocodec "github.com/kiterpc/kite/plugins/codec-proto"
)

// idleCmd measures the resident memory of a Kite server process holding
// many idle client connections: each connection is opened by a real Kite
// client (one pool slot per connection) and carries one call, then all
// stay open and quiet.
func idleCmd(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	conns := fs.Int("conns", 10000, "client connections to hold open")
	settle := fs.Duration("settle", 3*time.Second, "wait after the last connection before measuring")
	target := fs.Int("target-mib", 200, "RSS target in MiB for the verdict")
	out := fs.String("out", "", "directory for idle.md (none if empty)")
	size := fs.Int("payload", 128, "payload bytes of the one call each connection carries before going idle")
	_ = fs.Parse(args)

	sp, err := startServer(runOpts{}, "kite")
	if err != nil {
		return err
	}
	defer sp.stop()
	pid := sp.cmd.Process.Pid
	time.Sleep(500 * time.Millisecond)
	base, err := serverStats(sp.ctrl)
	if err != nil {
		return err
	}

	c, err := core.NewClient(core.ClientOptions{
		Targets:          []string{sp.addr},
		Codec:            protocodec.New(),
		ConnsPerEndpoint: *conns,
		ConnectTimeout:   10 * time.Second,
		Logger:           hclog.NewNullLogger(),
	})
	if err != nil {
		return err
	}
	defer c.Close()
	// The pool dials slot i on the i-th pick, so conns calls fill every
	// slot; a few workers keep it quick without bursting the backlog.
	start := time.Now()
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	payload := makePayload(*size)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(*conns) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var resp echopb.Payload
				err := c.Call(ctx, "Echo.Echo", &echopb.Payload{Data: payload}, &resp)
				cancel()
				if err != nil && failed.Add(1) == 1 {
					firstErr.Store(err.Error())
				}
			}
		}()
	}
	wg.Wait()
	opened := time.Since(start)
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("idle: %d of %d calls failed (first: %v); raise ulimit -n?", n, *conns, firstErr.Load())
	}
	time.Sleep(*settle)
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	held, err := serverStats(sp.ctrl)
	if err != nil {
		return err
	}
	if err := post(sp.ctrl, "/gc"); err != nil {
		return err
	}
	afterGC, err := serverStats(sp.ctrl)
	if err != nil {
		return err
	}
	if len(fds) < *conns {
		return fmt.Errorf("idle: the server holds %d descriptors, fewer than %d connections", len(fds), *conns)
	}

	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	perConn := float64(held.RSS-base.RSS) / float64(*conns) / 1024
	verdict := "met"
	if mib(held.RSS) >= float64(*target) {
		verdict = "not met"
	}
	report := fmt.Sprintf(`## Idle connections: Kite server RSS

| figure | value |
|---|---:|
| client connections held (server fds) | %d (%d) |
| time to open them (one call of %d B each) | %s |
| server RSS before connections | %.1f MiB |
| server RSS holding them | %.1f MiB |
| server RSS holding them, after GC + FreeOSMemory | %.1f MiB |
| server peak RSS (VmHWM) | %.1f MiB |
| server heap in use | %.1f MiB |
| server goroutines | %d |
| RSS per connection | %.1f KiB |
| target: < %d MiB | %s (%.1f MiB) |
`, *conns, len(fds), *size, opened.Round(time.Millisecond), mib(base.RSS), mib(held.RSS), mib(afterGC.RSS),
		mib(held.HWM), mib(int64(held.HeapInuse)), held.Goroutines, perConn, *target, verdict, mib(held.RSS))
	fmt.Print(report)
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*out, "idle.md"), []byte(report), 0o644); err != nil {
			return err
		}
		js, _ := json.MarshalIndent(map[string]any{"conns": *conns, "base": base, "held": held, "after_gc": afterGC}, "", "  ")
		if err := os.WriteFile(filepath.Join(*out, "idle.json"), js, 0o644); err != nil {
			return err
		}
	}
	if verdict != "met" {
		return errors.New("idle: RSS target not met")
	}
	return nil
}
