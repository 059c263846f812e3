package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kiterpc/kite/bench/echopb"
	"github.com/kiterpc/kite/bench/internal/filterbench"
	"github.com/kiterpc/kite/core"
	protocodec "github.com/kiterpc/kite/plugins/codec-proto"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

// filterPluginCmd serves the bench filter as an out-of-process plugin
// (the filters command starts this binary with it).
// With KITEBENCH_PLUGIN_CPUPROFILE set it writes a CPU profile there
// when the host closes it.
func filterPluginCmd() {
	if path := os.Getenv("KITEBENCH_PLUGIN_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
	}
	plugin.Serve(filterbench.Entry)
}

// pluginEnv is added to the plugin's environment (-plugin-env).
var pluginEnv []string

// filterVariant is one way of running the server's filter.
type filterVariant struct {
	name string
	doc  string
	// plugin: out of process; grpc: over the Filter service, not the
	// filter channel; beforeOnly: the spi.BeforeOnlyFilter variant.
	plugin, grpc, beforeOnly, none bool
	// env is added to the plugin's environment.
	env []string
}

var filterVariants = []filterVariant{
	{name: "none", doc: "no filter", none: true},
	{name: "compiled", doc: "the filter compiled in"},
	{name: "plugin-grpc", doc: "out of process, Before and After as gRPC calls (the path before the filter channel)", plugin: true, grpc: true},
	{name: "plugin", doc: "out of process on the filter channel, Before and After (two exchanges)", plugin: true},
	{name: "plugin-before-only", doc: "out of process on the filter channel, an spi.BeforeOnlyFilter (one exchange)", plugin: true, beforeOnly: true},
	{name: "plugin-1p", doc: "`plugin` with GOMAXPROCS=1 in the plugin's environment (kite.hcl: `env = { GOMAXPROCS = \"1\" }`)", plugin: true, env: []string{"GOMAXPROCS=1"}},
}

// filterRun is one measured run.
type filterRun struct {
	Variant string  `json:"variant"`
	Callers int     `json:"callers"`
	Round   int     `json:"round"`
	Calls   int64   `json:"calls"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"calls_per_s"`
	UsPer   float64 `json:"us_per_call"`      // wall time / calls (amortised at >1 caller)
	HostCPU float64 `json:"host_cpu_us_call"` // client + server process
	PlugCPU float64 `json:"plugin_cpu_us_call"`
	// Write system calls per call of the plugin process (/proc/PID/io).
	PlugWrites float64 `json:"plugin_writes_call"`
	FirstErr   string  `json:"first_error,omitempty"`
}

func filtersCmd(args []string) error {
	// -variants and -plugin-env change these for this run only.
	defer func(v []filterVariant, e []string) { filterVariants, pluginEnv = v, e }(slices.Clone(filterVariants), slices.Clone(pluginEnv))
	fs := flag.NewFlagSet("filters", flag.ExitOnError)
	dur := fs.Duration("d", 2*time.Second, "measured time per run")
	warm := fs.Duration("warmup", 500*time.Millisecond, "warm-up per run")
	rounds := fs.Int("rounds", 3, "rounds (variants alternate; medians reported)")
	callersList := fs.String("callers", "1,16", "concurrent callers, comma-separated")
	payload := fs.Int("payload", 128, "echo payload bytes")
	out := fs.String("out", "bench/results/local", "directory for filters.md and filters.json")
	only := fs.String("variants", "", "run only these variants (comma-separated; none is always run)")
	cpuprofile := fs.String("cpuprofile", "", "write this process's CPU profile (client + server) here")
	fs.Func("plugin-env", "KEY=value added to the plugin's environment (repeatable), e.g. GOMAXPROCS=1", func(s string) error {
		pluginEnv = append(pluginEnv, s)
		return nil
	})
	_ = fs.Parse(args)
	var callers []int
	for _, s := range strings.Split(*callersList, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n < 1 {
			return fmt.Errorf("-callers: bad %q", s)
		}
		callers = append(callers, n)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	sum, err := fileSHA256(exe)
	if err != nil {
		return err
	}
	if *only != "" {
		keep := strings.Split(*only, ",")
		filterVariants = slices.DeleteFunc(filterVariants, func(v filterVariant) bool {
			return !v.none && !slices.Contains(keep, v.name)
		})
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	load0 := loadAvg()
	start := time.Now()
	var runs []filterRun
	for r := range *rounds {
		for _, n := range callers {
			// Alternate the order of variants from round to round.
			order := slices.Clone(filterVariants)
			k := r % len(order)
			order = append(order[k:], order[:k]...)
			for _, v := range order {
				fr, err := runFilterVariant(v, n, *dur, *warm, *payload, exe, sum)
				if err != nil {
					return fmt.Errorf("%s, %d callers: %w", v.name, n, err)
				}
				fr.Round = r
				runs = append(runs, fr)
				fmt.Fprintf(os.Stderr, "round %d  callers %-3d %-20s %9.0f calls/s %8.1f µs/call  cpu host %6.1f + plugin %6.1f µs/call  plugin writes/call %.2f\n",
					r+1, n, v.name, fr.Rate, fr.UsPer, fr.HostCPU, fr.PlugCPU, fr.PlugWrites)
			}
		}
	}
	var floors []floorRun
	for range *rounds {
		f, err := runFloor(exe, *dur)
		if err != nil {
			return fmt.Errorf("round-trip floor: %w", err)
		}
		fmt.Fprintf(os.Stderr, "floor: %.1f µs per round trip, cpu %.1f + %.1f µs\n", f.UsPer, f.HostCPU, f.PeerCPU)
		floors = append(floors, f)
	}
	md := filtersReport(runs, floors, callers, *rounds, *dur, *warm, *payload, load0, loadAvg(), time.Since(start))
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(runs, "", "  ")
	if err := os.WriteFile(filepath.Join(*out, "filters.json"), js, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "filters.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// runFilterVariant serves echo with the variant's filter on the server
// side and calls it from n callers, server, client and plugin each
// fresh; the server and client share this process, the plugin is its
// own.
func runFilterVariant(v filterVariant, n int, dur, warm time.Duration, payload int, exe, sum string) (filterRun, error) {
	fr := filterRun{Variant: v.name, Callers: n}
	cfg := spi.Config(fmt.Sprintf(`{"key":%q,"before_only":%v}`, filterbench.Key, v.beforeOnly))
	var filters []spi.Filter
	var proc *plugin.Process
	switch {
	case v.none:
	case v.plugin:
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		e, p, err := plugin.Load(ctx, plugin.Decl{Kind: spi.KindFilter, Name: "benchkey", Path: exe, SHA256: sum,
			Args: []string{"filter-plugin"}, NoFilterChannel: v.grpc, Env: append(slices.Clone(pluginEnv), v.env...)}, hclog.NewNullLogger())
		cancel()
		if err != nil {
			return fr, err
		}
		defer p.Close()
		proc = p
		f, err := e.New(cfg)
		if err != nil {
			return fr, err
		}
		filters = append(filters, f.(spi.Filter))
	default:
		f, err := filterbench.Entry.New(cfg)
		if err != nil {
			return fr, err
		}
		filters = append(filters, f.(spi.Filter))
	}
	srv, err := core.NewServer(core.ServerOptions{Logger: hclog.NewNullLogger(), Filters: filters,
		MaxConnConcurrency: 100000, MaxConcurrency: 100000})
	if err != nil {
		return fr, err
	}
	if err := echopb.RegisterKiteEcho(srv, filterEcho{}); err != nil {
		return fr, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fr, err
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	cli, err := core.NewClient(core.ClientOptions{Targets: []string{ln.Addr().String()}, Codec: protocodec.New(),
		Logger: hclog.NewNullLogger()})
	if err != nil {
		return fr, err
	}
	defer cli.Close()
	ec := echopb.KiteEchoClient{C: cli}
	md := &spi.Metadata{}
	md.Set(filterbench.Header, filterbench.Key)
	base := core.WithMetadata(context.Background(), md)
	body := make([]byte, payload)

	// A refused call proves the filter runs (none excepted).
	if !v.none {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := ec.Echo(ctx, &echopb.Payload{Data: body})
		cancel()
		if spi.CodeOf(err) != spi.Unauthenticated {
			return fr, fmt.Errorf("a call without the key: want Unauthenticated, got %v", err)
		}
	}

	var measuring, stop atomic.Bool
	var calls atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := &echopb.Payload{Data: body}
			for !stop.Load() {
				ctx, cancel := context.WithTimeout(base, 10*time.Second)
				_, err := ec.Echo(ctx, in)
				cancel()
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				if measuring.Load() {
					calls.Add(1)
				}
			}
		}()
	}
	time.Sleep(warm)
	pid := 0
	if proc != nil {
		pid = proc.Pid()
	}
	h0, p0, w0 := selfCPUTime(), pidCPUTime(pid), pidWrites(pid)
	t0 := time.Now()
	measuring.Store(true)
	time.Sleep(dur)
	measuring.Store(false)
	el := time.Since(t0)
	h1, p1, w1 := selfCPUTime(), pidCPUTime(pid), pidWrites(pid)
	c := calls.Load()
	stop.Store(true)
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		fr.FirstErr = e.(string)
	}
	if c == 0 {
		return fr, errors.New("no successful calls: " + fr.FirstErr)
	}
	fr.Calls, fr.Seconds = c, el.Seconds()
	fr.Rate = float64(c) / el.Seconds()
	fr.UsPer = 1e6 / fr.Rate
	fr.HostCPU = float64((h1 - h0).Nanoseconds()) / 1e3 / float64(c)
	fr.PlugCPU = float64((p1 - p0).Nanoseconds()) / 1e3 / float64(c)
	fr.PlugWrites = float64(w1-w0) / float64(c)
	return fr, nil
}

type filterEcho struct{}

func (filterEcho) Echo(_ context.Context, in *echopb.Payload) (*echopb.Payload, error) {
	return in, nil
}
func (filterEcho) Stream(context.Context, *core.Stream) error {
	return spi.Errorf(spi.Unimplemented, "no streams here")
}

func selfCPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pidCPUTime sums the CPU time of pid's threads (ns precision, from
// /proc/PID/task/*/schedstat); 0 for pid 0.
func pidCPUTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum time.Duration
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var ns int64
		if _, err := fmt.Sscan(string(b), &ns); err == nil {
			sum += time.Duration(ns)
		}
	}
	return sum
}

// pidWrites is the count of write system calls of pid (syscw in
// /proc/PID/io); 0 for pid 0 or when unreadable.
func pidWrites(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	return 0
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// filtersReport is the markdown report: per caller count and variant the
// medians over rounds, and the cost each filter adds to a call against
// "none" of the same round (median of the per-round differences).
func filtersReport(runs []filterRun, floors []floorRun, callers []int, rounds int, dur, warm time.Duration, payload int, load0, load1 string, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Filter cost: compiled in vs out of process\n\n")
	fmt.Fprintf(&b, "- date: %s, %s, %d CPUs (GOMAXPROCS %d), took %s\n", time.Now().UTC().Format(time.RFC3339),
		runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0), took.Round(time.Second))
	fmt.Fprintf(&b, "- load average before: %s\n- load average after: %s\n", load0, load1)
	fmt.Fprintf(&b, "- Kite echo of %d B (protobuf), client and server in one process, one connection; the filter on the server side, checking an API key in the metadata (`bench/internal/filterbench`); the plugin is this binary (`kitebench filter-plugin`)\n", payload)
	fmt.Fprintf(&b, "- %s measured after %s warm-up per run, %d rounds, variants alternated; medians over rounds; \"added\" is the median over rounds of (variant − none) in the same round\n", dur, warm, rounds)
	fmt.Fprintf(&b, "- CPU: the bench process (client + server, getrusage) and the plugin process (/proc/PID/task/*/schedstat), per call\n\n")
	fmt.Fprintf(&b, "| callers | variant | calls/s | µs/call | added µs/call | CPU µs/call host + plugin | added CPU µs/call |\n|---|---|---|---|---|---|---|\n")
	type key struct {
		v string
		n int
		r int
	}
	byKey := map[key]filterRun{}
	for _, r := range runs {
		byKey[key{r.Variant, r.Callers, r.Round}] = r
	}
	added := map[key]float64{} // (variant, callers) → median added wall µs
	for _, n := range callers {
		for _, v := range filterVariants {
			var rate, us, cpuH, cpuP, dUs, dCPU []float64
			for r := range rounds {
				x, ok := byKey[key{v.name, n, r}]
				if !ok {
					continue
				}
				rate = append(rate, x.Rate)
				us = append(us, x.UsPer)
				cpuH = append(cpuH, x.HostCPU)
				cpuP = append(cpuP, x.PlugCPU)
				if base, ok := byKey[key{"none", n, r}]; ok {
					dUs = append(dUs, x.UsPer-base.UsPer)
					dCPU = append(dCPU, x.HostCPU+x.PlugCPU-base.HostCPU-base.PlugCPU)
				}
			}
			added[key{v.name, n, 0}] = median(dUs)
			addedStr, addedCPU := "—", "—"
			if !v.none {
				addedStr = fmt.Sprintf("%.1f", median(dUs))
				addedCPU = fmt.Sprintf("%.1f", median(dCPU))
			}
			fmt.Fprintf(&b, "| %d | %s | %.0f | %.1f | %s | %.1f + %.1f | %s |\n", n, v.name, median(rate), median(us), addedStr,
				median(cpuH), median(cpuP), addedCPU)
		}
	}
	var fus, fh, fp []float64
	for _, f := range floors {
		fus, fh, fp = append(fus, f.UsPer), append(fh, f.HostCPU), append(fp, f.PeerCPU)
	}
	fmt.Fprintf(&b, "\nFloor, same run: a bare round trip of 64 bytes on a Unix socket between this process and a child Go process (`kitebench pingpong-peer`), one at a time: %.1f µs, CPU %.1f + %.1f µs (medians of %d runs). An exchange with a filter plugin cannot cost less; sequentially, a call through a before-only filter makes one exchange, through another filter two.\n",
		median(fus), median(fh), median(fp), len(floors))
	fmt.Fprintf(&b, "\nVariants:\n\n")
	for _, v := range filterVariants {
		fmt.Fprintf(&b, "- `%s`: %s\n", v.name, v.doc)
	}
	fmt.Fprintf(&b, "\nGoal (issue 16): an out-of-process filter adds ≤ 100 µs per sequential call and ≤ 25 µs amortised at 16 callers.\n\n")
	for _, name := range []string{"plugin", "plugin-before-only", "plugin-1p", "plugin-grpc"} {
		for _, n := range callers {
			goal := 0.0
			switch n {
			case 1:
				goal = 100
			case 16:
				goal = 25
			default:
				continue
			}
			a := added[key{name, n, 0}]
			verdict := "met"
			if a > goal {
				verdict = "NOT met"
			}
			fmt.Fprintf(&b, "- `%s`, %d caller(s): adds %.1f µs/call (goal ≤ %.0f): %s\n", name, n, a, goal, verdict)
		}
	}
	return b.String()
}

// floorRun is the bare round-trip cost between two processes.
type floorRun struct {
	UsPer, HostCPU, PeerCPU float64
}

// pingPongPeerCmd echoes 64-byte messages on the Unix socket given as
// its argument (the floor measurement's child).
func pingPongPeerCmd(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: kitebench pingpong-peer SOCKET")
	}
	c, err := net.Dial("unix", args[0])
	if err != nil {
		return err
	}
	buf := make([]byte, 64)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil
		}
		if _, err := c.Write(buf); err != nil {
			return nil
		}
	}
}

// runFloor measures round trips to a pingpong-peer child for dur.
func runFloor(exe string, dur time.Duration) (floorRun, error) {
	var f floorRun
	dir, err := os.MkdirTemp("", "kitebench-floor")
	if err != nil {
		return f, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return f, err
	}
	defer ln.Close()
	cmd := exec.Command(exe, "pingpong-peer", sock)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return f, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if ul, ok := ln.(*net.UnixListener); ok {
		_ = ul.SetDeadline(time.Now().Add(10 * time.Second))
	}
	c, err := ln.Accept()
	if err != nil {
		return f, err
	}
	defer c.Close()
	buf := make([]byte, 64)
	rt := func() error {
		if _, err := c.Write(buf); err != nil {
			return err
		}
		_, err := io.ReadFull(c, buf)
		return err
	}
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
		if err := rt(); err != nil {
			return f, err
		}
	}
	h0, p0 := selfCPUTime(), pidCPUTime(cmd.Process.Pid)
	t0 := time.Now()
	n := 0
	for time.Since(t0) < dur {
		if err := rt(); err != nil {
			return f, err
		}
		n++
	}
	el := time.Since(t0)
	h1, p1 := selfCPUTime(), pidCPUTime(cmd.Process.Pid)
	f.UsPer = float64(el.Nanoseconds()) / 1e3 / float64(n)
	f.HostCPU = float64((h1 - h0).Nanoseconds()) / 1e3 / float64(n)
	f.PeerCPU = float64((p1 - p0).Nanoseconds()) / 1e3 / float64(n)
	return f, nil
}
