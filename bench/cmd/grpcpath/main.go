// Command grpcpath measures the gRPC path of a Kite server against
// grpc-go's own server, with the same grpc-go client in the same run, and
// Kite's own protocol on a port that also serves gRPC against one that
// does not (issue 12):
//
//	go run ./cmd/grpcpath -callers 100 -size 1024 -duration 3s -rounds 5
//
// Each round runs every system once, in turn, for the duration (every
// other round in the order B A within each compared pair, so a drift of
// the machine's speed favours neither side); the report gives each
// system's median QPS over the rounds and the ratios.
// Each server runs in a child process of its own, so its CPU time per
// call (read from /proc) is the server's alone; the client is the same
// for the gRPC pair.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kiterpc/kite/bench/echopb"
	"github.com/kiterpc/kite/core"
	protocodec "github.com/kiterpc/kite/plugins/codec-proto"
)

type kiteEcho struct{}

func (kiteEcho) Echo(_ context.Context, in *echopb.Payload) (*echopb.Payload, error) { return in, nil }
func (kiteEcho) Stream(context.Context, *core.Stream) error                          { return nil }

type grpcEcho struct{ echopb.UnimplementedEchoServer }

func (grpcEcho) Echo(_ context.Context, in *echopb.Payload) (*echopb.Payload, error) { return in, nil }

// system is one server and the client that measures it.
type system struct {
	name string
	kind string // -serve kind: the server runs in its own process
	dial func(addr string) (call func(ctx context.Context, p *echopb.Payload) error, close func(), err error)
}

func listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func kiteServer(grpcOn bool) func() (string, func(), error) {
	return func() (string, func(), error) {
		s, err := core.NewServer(core.ServerOptions{Logger: hclog.NewNullLogger(), Codecs: nil, MaxConcurrency: 100000, MaxConnConcurrency: 100000})
		if err != nil {
			return "", nil, err
		}
		if grpcOn {
			if err := s.EnableGRPC(core.GRPCOptions{}); err != nil {
				return "", nil, err
			}
		}
		if err := echopb.RegisterKiteEcho(s, kiteEcho{}); err != nil {
			return "", nil, err
		}
		ln, err := listen()
		if err != nil {
			return "", nil, err
		}
		go func() { _ = s.Serve(ln) }()
		return ln.Addr().String(), func() { _ = s.Close() }, nil
	}
}

func grpcServer() (string, func(), error) {
	ln, err := listen()
	if err != nil {
		return "", nil, err
	}
	gs := grpc.NewServer()
	echopb.RegisterEchoServer(gs, grpcEcho{})
	go func() { _ = gs.Serve(ln) }()
	return ln.Addr().String(), gs.Stop, nil
}

func grpcClient(addr string) (func(context.Context, *echopb.Payload) error, func(), error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	c := echopb.NewEchoClient(cc)
	return func(ctx context.Context, p *echopb.Payload) error {
		_, err := c.Echo(ctx, p)
		return err
	}, func() { _ = cc.Close() }, nil
}

func kiteClient(addr string) (func(context.Context, *echopb.Payload) error, func(), error) {
	c, err := core.NewClient(core.ClientOptions{Targets: []string{addr}, Codec: protocodec.New(), Logger: hclog.NewNullLogger()})
	if err != nil {
		return nil, nil, err
	}
	ec := echopb.KiteEchoClient{C: c}
	return func(ctx context.Context, p *echopb.Payload) error {
		_, err := ec.Echo(ctx, p)
		return err
	}, func() { _ = c.Close() }, nil
}

// serveChild runs one server in this process (the -serve mode): it
// prints the address and waits for stdin to close.
func serveChild(kind string) {
	var start func() (string, func(), error)
	switch kind {
	case "grpc-go":
		start = grpcServer
	case "kite-grpc":
		start = kiteServer(true)
	case "kite":
		start = kiteServer(false)
	default:
		fmt.Fprintln(os.Stderr, "unknown -serve", kind)
		os.Exit(2)
	}
	addr, stop, err := start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if p := os.Getenv("GRPCPATH_SERVER_PROFILE"); p != "" {
		// A CPU profile of the server process, e.g. to see where a gRPC
		// call's server time goes.
		f, err := os.Create(p + "." + kind)
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	fmt.Println(addr)
	_, _ = io.Copy(io.Discard, os.Stdin)
	stop()
	if p := os.Getenv("GRPCPATH_SERVER_MEMPROFILE"); p != "" {
		// Allocations of the whole run (go tool pprof -sample_index=alloc_objects).
		if f, err := os.Create(p + "." + kind); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			_ = f.Close()
		}
	}
}

// child starts a server process and returns its address, a function
// reading its CPU time so far (from /proc), and a stop function.
func child(kind string) (string, string, func() time.Duration, func() (int64, int64), func(), error) {
	cmd := exec.Command(os.Args[0], "-serve", kind)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", "", nil, nil, nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return "", "", nil, nil, nil, fmt.Errorf("server %s: %w", kind, err)
	}
	cpu := func() time.Duration {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		if err != nil {
			return 0
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
	}
	// Read and write system calls so far (/proc/PID/io): how well the
	// server batches.
	sys := func() (r, w int64) { return procIO(strconv.Itoa(cmd.Process.Pid)) }
	return strings.TrimSpace(line), strconv.Itoa(cmd.Process.Pid), cpu, sys, func() { _ = in.Close(); _ = cmd.Wait() }, nil
}

// ctxsw sums a process's threads' voluntary and involuntary context
// switches.
func ctxsw(pid string) (v [2]int64) {
	ents, _ := os.ReadDir("/proc/" + pid + "/task")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + pid + "/task/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if x, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
				v[0] += n
			}
			if x, ok := strings.CutPrefix(l, "nonvoluntary_ctxt_switches:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
				v[1] += n
			}
		}
	}
	return v
}

// procIO is a process's read and write system calls so far
// (/proc/PID/io).
func procIO(pid string) (r, w int64) {
	b, err := os.ReadFile("/proc/" + pid + "/io")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "syscr: "); ok {
			r, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(l, "syscw: "); ok {
			w, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return r, w
}

// run measures one system for d with n callers; it returns calls/s and
// the server process's CPU time per call (on a shared machine the CPU
// cost is steadier than the wall-clock rate).
// selfCPU is this process's CPU time so far: the client's, for the
// systems a client in this process measures.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(sys system, n, size int, d time.Duration) (float64, time.Duration, time.Duration, error) {
	addr, srvPid, srvCPU, srvSys, stop, err := child(sys.kind)
	if err != nil {
		return 0, 0, 0, err
	}
	defer stop()
	call, closeC, err := sys.dial(addr)
	if err != nil {
		return 0, 0, 0, err
	}
	defer closeC()
	p := &echopb.Payload{Data: make([]byte, size)}
	ctx := context.Background()
	if err := call(ctx, p); err != nil { // connect and warm
		return 0, 0, 0, fmt.Errorf("%s: first call: %w", sys.name, err)
	}
	warm, cancelWarm := context.WithTimeout(ctx, d/5)
	var count atomic.Int64
	var failed atomic.Value
	loop := func(c context.Context, counting bool, wg *sync.WaitGroup) {
		defer wg.Done()
		for c.Err() == nil {
			if err := call(ctx, p); err != nil {
				failed.Store(err)
				return
			}
			if counting {
				count.Add(1)
			}
		}
	}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go loop(warm, false, &wg)
	}
	wg.Wait()
	cancelWarm()
	measure, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start, cpu0, ccpu0 := time.Now(), srvCPU(), selfCPU()
	r0, w0 := srvSys()
	cr0, cw0 := procIO("self")
	cs0, ss0 := ctxsw("self"), ctxsw(srvPid)
	for range n {
		wg.Add(1)
		go loop(measure, true, &wg)
	}
	wg.Wait()
	el, cpu, ccpu := time.Since(start), srvCPU()-cpu0, selfCPU()-ccpu0
	r1, w1 := srvSys()
	cr1, cw1 := procIO("self")
	cs1, ss1 := ctxsw("self"), ctxsw(srvPid)
	if err, ok := failed.Load().(error); ok {
		return 0, 0, 0, fmt.Errorf("%s: %w", sys.name, err)
	}
	calls := max(count.Load(), 1)
	if os.Getenv("GRPCPATH_SYSCALLS") != "" {
		fmt.Printf("         %s: server %.3f reads/call, %.3f writes/call; client %.3f reads/call, %.3f writes/call\n", sys.name,
			float64(r1-r0)/float64(calls), float64(w1-w0)/float64(calls), float64(cr1-cr0)/float64(calls), float64(cw1-cw0)/float64(calls))
		fmt.Printf("         ctx switches/call: client vol %.3f invol %.3f; server vol %.3f invol %.3f\n",
			float64(cs1[0]-cs0[0])/float64(calls), float64(cs1[1]-cs0[1])/float64(calls), float64(ss1[0]-ss0[0])/float64(calls), float64(ss1[1]-ss0[1])/float64(calls))
	}
	return float64(calls) / el.Seconds(), cpu / time.Duration(calls), ccpu / time.Duration(calls), nil
}

// loadavg is the 1-minute load average (the machine may be shared).
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func main() {
	callers := flag.Int("callers", 100, "concurrent callers")
	size := flag.Int("size", 1024, "payload bytes")
	dur := flag.Duration("duration", 3*time.Second, "measured time per system per round")
	rounds := flag.Int("rounds", 5, "rounds")
	serve := flag.String("serve", "", "internal: run one server (grpc-go, kite-grpc, kite) and print its address")
	only := flag.Int("only", -1, "run only system N (0-3)")
	prof := flag.String("cpuprofile", "", "write a CPU profile of the run")
	clientGC := flag.Int("client-gogc", 0, "GOGC of this (the client's) process only, 0 = the default; servers keep theirs: shows how the ratios move with the client's own cost")
	flag.Parse()
	if *serve != "" {
		serveChild(*serve)
		return
	}
	if *clientGC > 0 {
		debug.SetGCPercent(*clientGC)
	}
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	systems := []system{
		{name: "grpc-go server   <- grpc-go client", kind: "grpc-go", dial: grpcClient},
		{name: "kite server gRPC <- grpc-go client", kind: "kite-grpc", dial: grpcClient},
		{name: "kite server, gRPC on  <- kite client", kind: "kite-grpc", dial: kiteClient},
		{name: "kite server, gRPC off <- kite client", kind: "kite", dial: kiteClient},
	}
	res := make([][]float64, len(systems))
	cpus := make([][]float64, len(systems))
	ccpus := make([][]float64, len(systems))
	gogc := debug.SetGCPercent(-1) // reads the setting...
	debug.SetGCPercent(gogc)       // ...and puts it back
	fmt.Printf("grpcpath: %d callers, %d B payload, %v x %d rounds, GOMAXPROCS=%d, client GOGC=%d, %s\n", *callers, *size, *dur, *rounds, runtime.GOMAXPROCS(0), gogc, time.Now().UTC().Format(time.RFC3339))
	for r := range *rounds {
		// Every other round swaps the order within each compared pair
		// (A B, B A, …): the machine's speed drifts over minutes (by up to
		// 1.5× on a shared VM), and a fixed order would hand the drift to
		// one side of each ratio.
		order := []int{0, 1, 2, 3}
		if r%2 == 1 {
			order = []int{1, 0, 3, 2}
		}
		for _, i := range order {
			sys := systems[i]
			if *only >= 0 && i != *only {
				res[i] = append(res[i], 1)
				cpus[i] = append(cpus[i], 1)
				ccpus[i] = append(ccpus[i], 1)
				continue
			}
			q, cpu, ccpu, err := run(sys, *callers, *size, *dur)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return
			}
			res[i] = append(res[i], q)
			cpus[i] = append(cpus[i], float64(cpu.Nanoseconds())/1e3)
			ccpus[i] = append(ccpus[i], float64(ccpu.Nanoseconds())/1e3)
			fmt.Printf("round %d  %-38s %9.0f calls/s %7.1f µs server CPU/call %7.1f µs client CPU/call  load %s\n", r+1, sys.name, q, float64(cpu.Nanoseconds())/1e3, float64(ccpu.Nanoseconds())/1e3, loadavg())
		}
	}
	fmt.Println()
	med := make([]float64, len(systems))
	for i, sys := range systems {
		med[i] = median(res[i])
		fmt.Printf("median   %-38s %9.0f calls/s %7.1f µs server CPU/call %7.1f µs client CPU/call\n", sys.name, med[i], median(cpus[i]), median(ccpus[i]))
	}
	ratio := func(a, b int, xs [][]float64) float64 { // median of per-round ratios (paired)
		var rs []float64
		for r := range xs[a] {
			rs = append(rs, xs[a][r]/xs[b][r])
		}
		return median(rs)
	}
	if *only >= 0 { // the pairs' ratios need both of a pair measured
		return
	}
	fmt.Printf("\nkite gRPC path / grpc-go server: %.2fx QPS (median of per-round ratios), %.2fx less CPU per call (goal >= 1.5x)\n", ratio(1, 0, res), ratio(0, 1, cpus))
	fmt.Printf("kite protocol, gRPC on / off:    %.3f QPS, %.3f CPU per call off/on (goal >= 0.95)\n", ratio(2, 3, res), ratio(3, 2, cpus))
}
