package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/bench/internal/measure"
	"github.com/kiterpc/kite/bench/internal/systems"
)

const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseDone
)

// clientCmd runs one measured client: warm-up, then a window of -d in
// which calls are counted and timed, bracketed by CPU/allocation
// snapshots of itself and (over the control endpoint) of the server.
func clientCmd(args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	system := fs.String("system", "kite", "system to call")
	addr := fs.String("addr", "", "server RPC address")
	ctrl := fs.String("ctrl", "", "server control address")
	workload := fs.String("workload", "", "workload name for the report")
	mode := fs.String("mode", "unary", "unary or stream")
	size := fs.Int("payload", 1024, "payload bytes")
	conc := fs.Int("c", 100, "concurrent callers (streams in stream mode)")
	warmup := fs.Duration("warmup", time.Second, "warm-up before measuring")
	dur := fs.Duration("d", 2*time.Second, "measured duration")
	window := fs.Int("window", 64, "messages in flight per stream (stream mode)")
	profile := fs.Bool("profile", false, "ask the server to CPU-profile the measured window")
	_ = fs.Parse(args)
	if *addr == "" || *ctrl == "" {
		return errors.New("client: -addr and -ctrl are required")
	}
	if !isLoopback(*addr) || !isLoopback(*ctrl) {
		return errors.New("client: addresses must be loopback")
	}
	sys, err := systems.Lookup(*system)
	if err != nil {
		return err
	}
	// A hard bound on the whole run, whatever a system under test does.
	limit := time.AfterFunc(*warmup+*dur+60*time.Second, func() {
		fmt.Fprintln(os.Stderr, "client: run exceeded its time bound; exiting")
		os.Exit(3)
	})
	defer limit.Stop()

	cl, err := sys.Dial(*addr, *conc)
	if err != nil {
		return err
	}
	defer cl.Close()
	payload := makePayload(*size)

	var phase atomic.Int32
	rec := measure.NewRecorder()
	var calls, errs atomic.Int64
	var firstErr atomic.Value
	noteErr := func(err error) {
		if errs.Add(1) == 1 {
			firstErr.Store(err.Error())
		}
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	switch *mode {
	case "unary":
		for w := 0; w < *conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var n int64
				for {
					p := phase.Load()
					if p == phaseDone {
						break
					}
					t0 := time.Now()
					got, err := cl.Echo(ctx, w, payload)
					el := time.Since(t0)
					if err == nil && got != len(payload) {
						err = fmt.Errorf("echo returned %d bytes, sent %d", got, len(payload))
					}
					if phase.Load() != phaseMeasure || p != phaseMeasure {
						if err != nil {
							noteErr(err)
							time.Sleep(10 * time.Millisecond) // a failing system must not spin
						}
						continue
					}
					if err != nil {
						noteErr(err)
						time.Sleep(10 * time.Millisecond)
						continue
					}
					n++
					rec.Record(w, el)
				}
				calls.Add(n)
			}()
		}
	case "stream":
		sc, ok := cl.(systems.Streamer)
		if !ok {
			return fmt.Errorf("client: %s has no streams", *system)
		}
		for w := 0; w < *conc; w++ {
			st, err := sc.OpenStream(ctx)
			if err != nil {
				return fmt.Errorf("opening stream: %w", err)
			}
			tokens := make(chan time.Time, *window)
			wg.Add(2)
			go func() { // sender
				defer wg.Done()
				for phase.Load() != phaseDone {
					tokens <- time.Now()
					if err := st.Send(payload); err != nil {
						noteErr(err)
						break
					}
				}
				close(tokens)
				_ = st.CloseSend()
			}()
			go func() { // receiver
				defer wg.Done()
				defer st.Close()
				var n int64
				for t0 := range tokens {
					got, err := st.Recv()
					if err != nil {
						if !errors.Is(err, io.EOF) {
							noteErr(err)
						}
						st.Close() // the sender's next Send fails and it stops
						for range tokens {
						}
						break
					}
					if phase.Load() == phaseMeasure {
						if got != len(payload) {
							noteErr(fmt.Errorf("stream echoed %d bytes, sent %d", got, len(payload)))
						}
						n++
						rec.Record(w, time.Since(t0))
					}
				}
				calls.Add(n)
			}()
		}
	default:
		return fmt.Errorf("client: unknown mode %q", *mode)
	}

	time.Sleep(*warmup)
	if *profile {
		_ = post(*ctrl, "/profile/start")
	}
	srv0, err := serverStats(*ctrl)
	if err != nil {
		phase.Store(phaseDone)
		return err
	}
	cli0 := measure.Snapshot()
	start := time.Now()
	phase.Store(phaseMeasure)
	time.Sleep(*dur)
	phase.Store(phaseDone)
	elapsed := time.Since(start)
	cli1 := measure.Snapshot()
	srv1, err := serverStats(*ctrl)
	if err != nil {
		return err
	}
	if *profile {
		_ = post(*ctrl, "/profile/stop")
	}
	waitDone := make(chan struct{})
	go func() { wg.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-time.After(30 * time.Second):
		return errors.New("client: callers did not finish within 30 s of the end of the run")
	}

	res := measure.Result{
		System: *system, Workload: *workload, Payload: *size, Conc: *conc,
		Seconds: elapsed.Seconds(), Calls: calls.Load(), Errors: errs.Load(),
	}
	if v, ok := firstErr.Load().(string); ok {
		res.FirstErr = v
	}
	res.QPS = float64(res.Calls) / res.Seconds
	res.Fill(rec.Merged())
	res.Costs(cli0, cli1, srv0, srv1)
	return json.NewEncoder(os.Stdout).Encode(&res)
}

// makePayload returns n bytes of repetitive text: every system sends the
// same bytes, and the zstd variant has something to compress, as real
// payloads usually do.
func makePayload(n int) []byte {
	const text = "kite benchmark payload: the quick brown fox jumps over the lazy dog 0123456789\n"
	b := make([]byte, n)
	for i := range b {
		b[i] = text[i%len(text)]
	}
	return b
}

var ctrlClient = &http.Client{Timeout: 10 * time.Second}

func serverStats(ctrl string) (measure.ProcStats, error) {
	var st measure.ProcStats
	resp, err := ctrlClient.Get("http://" + ctrl + "/stats")
	if err != nil {
		return st, fmt.Errorf("reading server stats: %w", err)
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

func post(ctrl, path string) error {
	resp, err := ctrlClient.Post("http://"+ctrl+path, "text/plain", nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}
