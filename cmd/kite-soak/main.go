package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	_ "github.com/kiterpc/kite/plugins/codec-json"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("kite-soak", flag.ContinueOnError)
	var cfg Config
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "length of the run")
	fs.IntVar(&cfg.Servers, "servers", 3, "servers, each behind its own fault proxy")
	fs.IntVar(&cfg.Workers, "workers", 64, "concurrent callers")
	fs.IntVar(&cfg.Rate, "rate", 4000, "calls per second across callers; 0 = as fast as possible")
	fs.DurationVar(&cfg.Deadline, "deadline", time.Second, "deadline of each call")
	fs.DurationVar(&cfg.Grace, "grace", 2*time.Second, "a call not returned this long after its deadline is lost")
	fs.Float64Var(&cfg.StreamShare, "streams", 0.1, "fraction of calls that are streams")
	fs.DurationVar(&cfg.FaultEvery, "fault-every", 5*time.Second, "period of the fault schedule")
	fs.DurationVar(&cfg.SampleEvery, "sample-every", 5*time.Second, "period of resource samples")
	fs.DurationVar(&cfg.ProgressEvery, "progress-every", 30*time.Second, "period of progress lines")
	fs.DurationVar(&cfg.Mark, "mark", 0, "the reference point for flatness (default 2m, or duration/5 if shorter)")
	fs.DurationVar(&cfg.Window, "window", 0, "span averaged at the mark and at the end (default 1m, or duration/10 if shorter)")
	fs.IntVar(&cfg.MaxEjectionPercent, "max-ejection-percent", 0, "cap on the share of servers the client's breakers eject at once (0: the default, 50)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the fault schedule")
	fs.DurationVar(&cfg.HostileEvery, "hostile-every", 10*time.Second, "period of the hostile-client rounds (idle streams, decompression bombs, window overruns); negative = none")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	verbose := fs.Bool("v", false, "log client and server events to stderr")
	strict := fs.Bool("strict", false, "also fail when goroutines or RSS drift more than 10% from the mark to the end")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this loopback address (e.g. 127.0.0.1:6060) to profile the run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *pprofAddr != "" {
		// Heap profiles fine enough to find a slow leak (the default
		// samples one allocation per 512 KiB).
		runtime.MemProfileRate = 4 << 10
		ln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kite-soak: -pprof:", err)
			return 2
		}
		defer ln.Close()
		fmt.Fprintf(os.Stderr, "kite-soak: pprof on http://%s/debug/pprof/\n", ln.Addr())
		go func() { _ = http.Serve(ln, nil) }()
	}
	cfg.Out = os.Stdout
	if *verbose {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Warn})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kite-soak:", err)
		return 1
	}
	fmt.Println()
	rep.Format(os.Stdout)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "kite-soak:", err)
			return 1
		}
	}
	switch {
	case rep.Lost > 0:
		fmt.Println("FAIL: lost calls")
		return 1
	case rep.Wrong > 0:
		fmt.Println("FAIL: wrong answers")
		return 1
	case rep.Hostile.Failures > 0:
		fmt.Println("FAIL: a hostile client was not held")
		return 1
	case *strict && !rep.Flat():
		fmt.Println("FAIL: resources not flat")
		return 1
	}
	fmt.Println("PASS")
	return 0
}
