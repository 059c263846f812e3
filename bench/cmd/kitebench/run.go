package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kiterpc/kite/bench/internal/measure"
	"github.com/kiterpc/kite/bench/internal/report"
	"github.com/kiterpc/kite/bench/internal/systems"
)

// workload is one measured scenario.
type workload struct {
	Name    string
	Mode    string // unary or stream
	Payload int
	Conc    int
	Only    []string // systems that support it; nil = all
}

var workloads = []workload{
	{Name: "echo-1k-c1", Mode: "unary", Payload: 1024, Conc: 1},
	{Name: "echo-1k-c100", Mode: "unary", Payload: 1024, Conc: 100},
	{Name: "echo-1k-c1000", Mode: "unary", Payload: 1024, Conc: 1000},
	{Name: "echo-128-c1", Mode: "unary", Payload: 128, Conc: 1},
	{Name: "echo-128-c100", Mode: "unary", Payload: 128, Conc: 100},
	{Name: "echo-128-c1000", Mode: "unary", Payload: 128, Conc: 1000},
	{Name: "echo-64k-c100", Mode: "unary", Payload: 64 << 10, Conc: 100},
	{Name: "stream-1k-c8", Mode: "stream", Payload: 1024, Conc: 8, Only: []string{"kite", "grpc"}},
}

// children tracks every process the orchestrator started, so that an
// interrupt or a failure kills exactly those, by PID.
var children struct {
	sync.Mutex
	m map[int]*exec.Cmd
}

func track(c *exec.Cmd) {
	children.Lock()
	if children.m == nil {
		children.m = map[int]*exec.Cmd{}
	}
	children.m[c.Process.Pid] = c
	children.Unlock()
}

func untrack(c *exec.Cmd) {
	children.Lock()
	delete(children.m, c.Process.Pid)
	children.Unlock()
}

func killChildren() {
	children.Lock()
	defer children.Unlock()
	for pid, c := range children.m {
		_ = c.Process.Kill()
		delete(children.m, pid)
	}
}

// runOpts are the orchestrator's settings.
type runOpts struct {
	dur, warmup time.Duration
	rounds      int
	pin         bool
	serverCPU   string
	clientCPU   string
	profileDir  string
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	dur := fs.Duration("d", 2*time.Second, "measured duration per run")
	warmup := fs.Duration("warmup", time.Second, "warm-up per run (not measured)")
	rounds := fs.Int("rounds", 1, "rounds; systems alternate within each round, medians are reported")
	wl := fs.String("workloads", "default", "default (echo-1k-c100), all, or a comma list of: "+workloadNames())
	sysFlag := fs.String("systems", "all", "all or a comma list of: "+strings.Join(systems.Names(), ","))
	pin := fs.String("pin", "auto", "pin server and client to CPUs with taskset: auto (if taskset exists and nproc ≥ 2), on, off")
	serverCPU := fs.String("server-cpu", "0", "taskset CPU list for the server")
	clientCPU := fs.String("client-cpu", "1", "taskset CPU list for the client")
	out := fs.String("out", "", "directory for results.md, results.json and chart.svg (none if empty)")
	profileDir := fs.String("cpuprofile", "", "directory for CPU profiles of the servers over each measured window")
	_ = fs.Parse(args)

	ws, err := selectWorkloads(*wl)
	if err != nil {
		return err
	}
	sys, err := selectSystems(*sysFlag)
	if err != nil {
		return err
	}
	o := runOpts{dur: *dur, warmup: *warmup, rounds: max(1, *rounds), serverCPU: *serverCPU, clientCPU: *clientCPU, profileDir: *profileDir}
	switch *pin {
	case "on":
		o.pin = true
	case "off":
	case "auto":
		_, lerr := exec.LookPath("taskset")
		o.pin = lerr == nil && runtime.NumCPU() >= 2
	default:
		return fmt.Errorf("run: -pin must be auto, on or off")
	}
	if o.pin {
		if _, err := exec.LookPath("taskset"); err != nil {
			return errors.New("run: -pin on needs taskset (util-linux)")
		}
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-sig:
			killChildren()
			fmt.Fprintln(os.Stderr, "kitebench: interrupted; child processes killed")
			os.Exit(130)
		case <-stopWatch:
		}
	}()
	defer func() {
		signal.Stop(sig)
		close(stopWatch)
		<-watchDone
		killChildren()
	}()

	facts := machineFacts(o)
	groups := make([]*report.Group, len(ws))
	for i, w := range ws {
		groups[i] = &report.Group{Workload: w.Name, Runs: map[string][]measure.Result{}}
		for _, s := range sys {
			if supports(w, s) {
				groups[i].Systems = append(groups[i].Systems, s)
			}
		}
	}
	var failures []string
	total := 0
	for _, g := range groups {
		total += len(g.Systems) * o.rounds
	}
	n := 0
	for r := 0; r < o.rounds; r++ {
		for i, w := range ws {
			g := groups[i]
			// Alternate: each round starts with a different system, so
			// slow drifts of the machine spread over all of them.
			order := append(append([]string(nil), g.Systems[r%max(1, len(g.Systems)):]...), g.Systems[:r%max(1, len(g.Systems))]...)
			for _, s := range order {
				n++
				fmt.Fprintf(os.Stderr, "[%d/%d] round %d %s %s ... ", n, total, r+1, w.Name, s)
				res, err := runOne(o, w, s, r)
				if err != nil {
					fmt.Fprintf(os.Stderr, "FAILED: %v\n", err)
					failures = append(failures, fmt.Sprintf("round %d %s %s: %v", r+1, w.Name, s, err))
					continue
				}
				fmt.Fprintf(os.Stderr, "%s QPS, p99 %s µs\n", report.Thousands(res.QPS), report.Thousands(res.P99))
				g.Runs[s] = append(g.Runs[s], res)
			}
		}
	}
	facts["load average after"] = loadAvg()

	var md bytes.Buffer
	writeMarkdown(&md, facts, groups, failures)
	fmt.Print(md.String())
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*out, "results.md"), md.Bytes(), 0o644); err != nil {
			return err
		}
		js, _ := json.MarshalIndent(map[string]any{"machine": facts, "groups": groups}, "", "  ")
		if err := os.WriteFile(filepath.Join(*out, "results.json"), js, 0o644); err != nil {
			return err
		}
		var svg bytes.Buffer
		report.SVG(&svg, groups)
		if err := os.WriteFile(filepath.Join(*out, "chart.svg"), svg.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s/{results.md,results.json,chart.svg}\n", *out)
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d run(s) failed", len(failures))
	}
	return nil
}

func writeMarkdown(w io.Writer, facts map[string]string, groups []*report.Group, failures []string) {
	fmt.Fprintln(w, "## Machine")
	fmt.Fprintln(w)
	for _, k := range []string{"date", "cpu", "nproc", "go", "kernel", "pinning", "duration", "rounds", "load average before", "load average after"} {
		fmt.Fprintf(w, "- %s: %s\n", k, facts[k])
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Results")
	fmt.Fprintln(w)
	for _, g := range groups {
		report.Table(w, g)
	}
	fmt.Fprintln(w, "## Issue-6 targets (system \"kite\": protobuf codec)")
	fmt.Fprintln(w)
	report.TargetTable(w, report.Targets(groups, "kite"))
	fmt.Fprintln(w, "## Default-path goals (issue 15: README default stack, tail, TLS)")
	fmt.Fprintln(w)
	report.TargetTable(w, report.DefaultPathTargets(groups))
	if len(failures) > 0 {
		fmt.Fprintln(w, "## Failed runs")
		fmt.Fprintln(w)
		for _, f := range failures {
			fmt.Fprintln(w, "-", f)
		}
		fmt.Fprintln(w)
	}
}

func supports(w workload, s string) bool {
	if w.Only == nil {
		return true
	}
	for _, o := range w.Only {
		if o == s {
			return true
		}
	}
	return false
}

func workloadNames() string {
	var n []string
	for _, w := range workloads {
		n = append(n, w.Name)
	}
	return strings.Join(n, ",")
}

func selectWorkloads(spec string) ([]workload, error) {
	switch spec {
	case "default", "":
		spec = "echo-1k-c100"
	case "all":
		return workloads, nil
	}
	var out []workload
	for _, name := range strings.Split(spec, ",") {
		found := false
		for _, w := range workloads {
			if w.Name == strings.TrimSpace(name) {
				out = append(out, w)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown workload %q (known: %s)", name, workloadNames())
		}
	}
	return out, nil
}

func selectSystems(spec string) ([]string, error) {
	if spec == "all" || spec == "" {
		return systems.Names(), nil
	}
	var out []string
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		if _, err := systems.Lookup(name); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, nil
}

// command returns argv for this binary, pinned to cpus when pinning.
func command(ctx context.Context, o runOpts, cpus string, args ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	argv := append([]string{self}, args...)
	if o.pin {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Cancel = func() error { return c.Process.Kill() }
	c.WaitDelay = 5 * time.Second
	return c, nil
}

type serverProc struct {
	cmd        *exec.Cmd
	addr, ctrl string
	stderr     *bytes.Buffer
	exited     chan struct{}
}

// startServer starts a server process and waits for its READY line.
func startServer(o runOpts, system string, extra ...string) (*serverProc, error) {
	args := append([]string{"server", "-system", system, "-addr", "127.0.0.1:0", "-ctrl", "127.0.0.1:0"}, extra...)
	c, err := command(context.Background(), o, o.serverCPU, args...)
	if err != nil {
		return nil, err
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	sp := &serverProc{cmd: c, stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	c.Stderr = &lockedWriter{w: sp.stderr}
	if err := c.Start(); err != nil {
		return nil, err
	}
	track(c)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { _ = c.Wait(); close(sp.exited) }()
	select {
	case line, ok := <-lines:
		f := strings.Fields(line)
		if !ok || len(f) != 3 || f[0] != "READY" {
			sp.stop()
			return nil, fmt.Errorf("server did not start: %q %s", line, sp.stderr.String())
		}
		sp.addr, sp.ctrl = f[1], f[2]
		return sp, nil
	case <-time.After(30 * time.Second):
		sp.stop()
		return nil, errors.New("server did not report READY within 30 s")
	}
}

// stop ends the server by PID: SIGTERM, then SIGKILL after 3 s.
func (sp *serverProc) stop() {
	_ = sp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-sp.exited:
	case <-time.After(3 * time.Second):
		_ = sp.cmd.Process.Kill()
		<-sp.exited
	}
	untrack(sp.cmd)
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// runOne measures one system on one workload in fresh processes.
func runOne(o runOpts, w workload, system string, round int) (measure.Result, error) {
	var extra []string
	profile := o.profileDir != ""
	if profile {
		extra = []string{"-cpuprofile", filepath.Join(o.profileDir, fmt.Sprintf("%s-%s-r%d.pprof", w.Name, system, round+1))}
	}
	sp, err := startServer(o, system, extra...)
	if err != nil {
		return measure.Result{}, err
	}
	defer sp.stop()

	ctx, cancel := context.WithTimeout(context.Background(), o.warmup+o.dur+90*time.Second)
	defer cancel()
	args := []string{"client", "-system", system, "-addr", sp.addr, "-ctrl", sp.ctrl,
		"-workload", w.Name, "-mode", w.Mode, "-payload", fmt.Sprint(w.Payload), "-c", fmt.Sprint(w.Conc),
		"-warmup", o.warmup.String(), "-d", o.dur.String()}
	if profile {
		args = append(args, "-profile")
	}
	c, err := command(ctx, o, o.clientCPU, args...)
	if err != nil {
		return measure.Result{}, err
	}
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Start(); err != nil {
		return measure.Result{}, err
	}
	track(c)
	err = c.Wait()
	untrack(c)
	if err != nil {
		return measure.Result{}, fmt.Errorf("client: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var res measure.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return res, fmt.Errorf("client output: %v: %q", err, stdout.String())
	}
	if res.Calls == 0 {
		return res, fmt.Errorf("no successful calls (first error: %s)", res.FirstErr)
	}
	return res, nil
}

func machineFacts(o runOpts) map[string]string {
	f := map[string]string{
		"date":     time.Now().UTC().Format(time.RFC3339),
		"nproc":    fmt.Sprint(runtime.NumCPU()),
		"go":       runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		"duration": fmt.Sprintf("%s measured after %s warm-up per run", o.dur, o.warmup),
		"rounds":   fmt.Sprint(o.rounds),
		"pinning":  "off (server and client share all CPUs)",
	}
	if o.pin {
		f["pinning"] = fmt.Sprintf("server taskset -c %s, client taskset -c %s", o.serverCPU, o.clientCPU)
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if i := strings.Index(line, ":"); i >= 0 {
					f["cpu"] = strings.TrimSpace(line[i+1:])
				}
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		f["kernel"] = strings.TrimSpace(string(b))
	}
	f["load average before"] = loadAvg()
	return f
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fs := strings.Fields(string(b))
	if len(fs) < 3 {
		return "unknown"
	}
	return strings.Join(fs[:3], " ") + " (1, 5, 15 min; other work on this machine)"
}
