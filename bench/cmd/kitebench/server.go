package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/kiterpc/kite/bench/internal/measure"
	"github.com/kiterpc/kite/bench/internal/systems"
)

// serverCmd runs one echo server and a loopback control endpoint:
//
//	GET  /stats          this process's measure.ProcStats as JSON
//	POST /profile/start  begin a CPU profile into -cpuprofile
//	POST /profile/stop   end it
//	     /debug/pprof/   the usual pprof handlers
//
// It prints "READY <rpc addr> <control addr>" once both listen, and
// exits on SIGTERM/SIGINT or after -max-life, whichever comes first, so
// a lost orchestrator never leaves it running for long.
func serverCmd(args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	system := fs.String("system", "kite", "system to serve")
	addr := fs.String("addr", "127.0.0.1:0", "RPC listen address (loopback)")
	ctrl := fs.String("ctrl", "127.0.0.1:0", "control listen address (loopback)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the window between /profile/start and /profile/stop here")
	maxLife := fs.Duration("max-life", 15*time.Minute, "exit after this long regardless")
	_ = fs.Parse(args)

	sys, err := systems.Lookup(*system)
	if err != nil {
		return err
	}
	if !isLoopback(*addr) || !isLoopback(*ctrl) {
		return errors.New("server: listen addresses must be loopback")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv, err := sys.Serve(ln)
	if err != nil {
		return err
	}
	cln, err := net.Listen("tcp", *ctrl)
	if err != nil {
		return err
	}
	var profMu sync.Mutex
	var profFile *os.File
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(measure.Snapshot())
	})
	mux.HandleFunc("POST /profile/start", func(w http.ResponseWriter, _ *http.Request) {
		profMu.Lock()
		defer profMu.Unlock()
		if *cpuprofile == "" || profFile != nil {
			w.WriteHeader(http.StatusConflict)
			return
		}
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		profFile = f
	})
	mux.HandleFunc("POST /profile/stop", func(w http.ResponseWriter, _ *http.Request) {
		profMu.Lock()
		defer profMu.Unlock()
		if profFile != nil {
			pprof.StopCPUProfile()
			_ = profFile.Close()
			profFile = nil
		}
	})
	mux.HandleFunc("POST /gc", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
	})
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(cln) }()

	fmt.Printf("READY %s %s\n", ln.Addr(), cln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-time.After(*maxLife):
		fmt.Fprintln(os.Stderr, "server: max-life reached, exiting")
	}
	profMu.Lock()
	if profFile != nil {
		pprof.StopCPUProfile()
		_ = profFile.Close()
	}
	profMu.Unlock()
	_ = hs.Close()
	done := make(chan struct{})
	go func() { _ = srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
	return nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
