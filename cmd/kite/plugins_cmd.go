package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"
)

func init() {
	register(command{name: "plugins", summary: "list compiled-in and external plugins with versions and checksums", run: runPlugins})
}

type pluginRow struct {
	Kind    spi.Kind `json:"kind"`
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Source  string   `json:"source"`
	SHA256  string   `json:"sha256,omitempty"`
	Doc     string   `json:"doc,omitempty"`
}

func runPlugins(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kite plugins", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addCommonFlags(fs)
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: kite plugins [-f kite.hcl] [-json]

Plugins lists every implementation available to a stack: the ones
compiled into this binary (source "builtin") and the external plugins
the kite.hcl declares, which are started — their sha256 checked first —
and asked for their version. An external plugin replaces a compiled-in
one of the same kind and name. Without -f and without ./kite.hcl (or
$KITE_CONFIG), only the compiled-in ones are listed.

Exit status: 0 success, 1 the file or a plugin failed to load, 2 usage error.

Flags:`)
		fs.PrintDefaults()
	}
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "kite plugins: unexpected argument %q\n", pos[0])
		return exitUsage
	}

	var rows []pluginRow
	_, statErr := os.Stat(cf.path())
	if *cf.file == "" && os.Getenv("KITE_CONFIG") == "" && os.IsNotExist(statErr) {
		for _, e := range spi.Default.Entries() {
			rows = append(rows, pluginRow{Kind: e.Kind, Name: e.Name, Version: e.Version, Source: e.Source, Doc: e.Doc})
		}
	} else {
		st, code := cf.load(stderr)
		if st == nil {
			return code
		}
		defer st.Close()
		if err := st.StartPlugins(); err != nil {
			fmt.Fprintf(stderr, "kite plugins: %v\n", err)
			return exitError
		}
		for _, p := range st.Plugins() {
			rows = append(rows, rowOf(p))
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if rows == nil {
			rows = []pluginRow{}
		}
		if err := enc.Encode(rows); err != nil {
			fmt.Fprintf(stderr, "kite plugins: %v\n", err)
			return exitError
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tVERSION\tSOURCE\tSHA256")
	for _, r := range rows {
		sum := "-"
		if r.SHA256 != "" {
			sum = r.SHA256
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Kind, r.Name, orDash(r.Version), r.Source, sum)
	}
	if err := tw.Flush(); err != nil {
		return exitError
	}
	return exitOK
}

func rowOf(p stack.PluginInfo) pluginRow {
	return pluginRow{Kind: p.Kind, Name: p.Name, Version: p.Version, Source: p.Source, SHA256: p.SHA256, Doc: p.Doc}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
