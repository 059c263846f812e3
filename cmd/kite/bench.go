package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kiterpc/kite/internal/loadgen"
)

func init() {
	register(command{name: "bench", summary: "load-test a method: QPS, latency percentiles, errors by code", run: runBench})
}

// benchReport is the -json output.
type benchReport struct {
	Client      string             `json:"client"`
	Method      string             `json:"method"`
	Concurrency int                `json:"concurrency"`
	DurationS   float64            `json:"duration_s"`
	Calls       int64              `json:"calls"`
	OK          int64              `json:"ok"`
	Errors      map[string]int64   `json:"errors"`
	QPS         float64            `json:"qps"`
	LatencyUS   map[string]float64 `json:"latency_us"`
	Interrupted bool               `json:"interrupted,omitempty"`
}

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kite bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addCommonFlags(fs)
	conc := fs.Int("c", 50, "concurrent callers")
	dur := fs.Duration("d", 10*time.Second, "duration of the run")
	n := fs.Int64("n", 0, "stop after this many calls (0: run for -d)")
	timeout := fs.Duration("timeout", 0, "deadline of each call (default: the client block's timeout)")
	asJSON := fs.Bool("json", false, "print the result as JSON on stdout (progress still goes to stderr)")
	quiet := fs.Bool("q", false, "no progress line")
	var md metaFlag
	fs.Var(&md, "H", "request metadata `key=value` (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: kite bench [flags] <client> <Service.Method> [json]

Bench calls Service.Method through the client block <client> of kite.hcl
with the JSON request from -c concurrent callers for -d (or -n calls),
printing a progress line on stderr every 500 ms, then the throughput,
latency percentiles (p50, p90, p99, p99.9) and failed calls by status
code. One warm-up call runs first; if it fails, bench stops there.
Flags may follow the arguments: kite bench echo Echo.Say '{"text":"hi"}' -c 50 -d 10s

Exit status: 0 at least one call succeeded, 1 the warm-up, every call or
the configuration failed, 2 usage error.

Flags:`)
		fs.PrintDefaults()
	}
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	if *conc <= 0 || *dur <= 0 && *n <= 0 || *n < 0 {
		fmt.Fprintln(stderr, "kite bench: -c must be positive, and -d or -n too")
		return exitUsage
	}
	target, ok := parseCallTarget(fs, "kite bench", pos, stderr)
	if !ok || !timeoutValid(fs, "kite bench", *timeout, stderr) {
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, c, code := target.dial(cf, "kite bench", *timeout, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	ctx = md.attach(ctx)
	clientName, method := target.client, target.method
	call := func(ctx context.Context) error {
		var resp json.RawMessage
		return c.Call(ctx, method, target.req, &resp)
	}
	if err := call(ctx); err != nil {
		printCallError(stderr, "kite bench: warm-up call failed", err)
		return exitError
	}

	cfg := loadgen.Config{Concurrency: *conc, Requests: *n}
	if *n == 0 {
		cfg.Duration = *dur
	}
	tty := isTerminal(stderr)
	if !*quiet {
		cfg.Progress = func(s loadgen.Snapshot) {
			line := fmt.Sprintf("%6.1fs  %10d calls  %9.0f qps (now %9.0f)  %d errors",
				s.Elapsed.Seconds(), s.Calls, s.QPS, s.RecentQPS, s.Errors)
			if tty {
				fmt.Fprintf(stderr, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(stderr, line)
			}
		}
	}
	res, runErr := loadgen.Run(ctx, cfg, call)
	if tty && !*quiet {
		fmt.Fprint(stderr, "\r\033[K")
	}
	interrupted := runErr != nil
	if interrupted {
		fmt.Fprintln(stderr, "kite bench: interrupted; results so far:")
	}

	if *asJSON {
		rep := benchReport{
			Client: clientName, Method: method, Concurrency: res.Concurrency,
			DurationS: res.Elapsed.Seconds(), Calls: res.Calls, OK: res.OK, Errors: res.Errors, QPS: res.QPS,
			LatencyUS: map[string]float64{
				"min": us(res.Latency.Min), "mean": us(res.Latency.Mean),
				"p50": us(res.Latency.P50), "p90": us(res.Latency.P90), "p99": us(res.Latency.P99),
				"p99.9": us(res.Latency.P999), "max": us(res.Latency.Max),
			},
			Interrupted: interrupted,
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printBench(stdout, clientName, method, res)
	}
	if res.OK == 0 {
		return exitError
	}
	return exitOK
}

func printBench(w io.Writer, client, method string, r *loadgen.Result) {
	l := r.Latency
	fmt.Fprintf(w, "%s %s: %d callers, %.2fs\n", client, method, r.Concurrency, r.Elapsed.Seconds())
	fmt.Fprintf(w, "  calls    %d (ok %d, errors %d)\n", r.Calls, r.OK, r.ErrorCount())
	fmt.Fprintf(w, "  qps      %.1f\n", r.QPS)
	fmt.Fprintf(w, "  latency  p50 %s  p90 %s  p99 %s  p99.9 %s\n", fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.P999))
	fmt.Fprintf(w, "           min %s  mean %s  max %s\n", fmtDur(l.Min), fmtDur(l.Mean), fmtDur(l.Max))
	if len(r.Errors) > 0 {
		parts := make([]string, 0, len(r.Errors))
		for _, k := range r.ErrorClasses() {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.Errors[k]))
		}
		fmt.Fprintf(w, "  errors   %s\n", strings.Join(parts, ", "))
	}
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// fmtDur prints a latency with three significant digits in µs or ms.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", us(d))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// isTerminal reports whether w is a character device (a terminal), where
// the progress line can rewrite itself.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
