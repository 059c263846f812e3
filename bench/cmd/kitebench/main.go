// Command kitebench measures Kite against gRPC-go, drpc, net/rpc and a
// hand-written raw framing limit, with server and client in separate
// processes.
//
//	kitebench run    [-d 2s] [-rounds 1] [-workloads default|all|LIST] [-systems all|LIST] [-pin auto|on|off] [-out DIR]
//	kitebench idle   [-conns 10000]      # RSS of a Kite server holding idle connections
//	kitebench filters [-d 2s] [-rounds 3] [-callers 1,16]  # a filter compiled in vs out of process
//	kitebench server -system NAME        # one echo server (used by run)
//	kitebench client -system NAME ...    # one measured client run, JSON on stdout (used by run)
//
// run starts a server (pinned to -server-cpu) and a client (pinned to
// -client-cpu) per system and workload, alternating systems over rounds,
// and reports medians as a markdown table, JSON and an SVG chart.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "server":
		err = serverCmd(os.Args[2:])
	case "client":
		err = clientCmd(os.Args[2:])
	case "idle":
		err = idleCmd(os.Args[2:])
	case "filters":
		err = filtersCmd(os.Args[2:])
	case "filter-plugin":
		filterPluginCmd()
	case "pingpong-peer":
		err = pingPongPeerCmd(os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "kitebench: unknown command %q\n", os.Args[1])
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kitebench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: kitebench run|idle|filters|server|client [flags]   (kitebench CMD -h for flags)
`)
	os.Exit(2)
}
