package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/hashicorp/go-hclog"

	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"
)

func init() {
	register(command{name: "check", summary: "validate a kite.hcl", run: runCheck})
}

// defaultConfigPath is where subcommands look for kite.hcl: $KITE_CONFIG,
// else ./kite.hcl.
func defaultConfigPath() string {
	if p := os.Getenv("KITE_CONFIG"); p != "" {
		return p
	}
	return "kite.hcl"
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kite check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "kite.hcl `file` to check (default $KITE_CONFIG, else ./kite.hcl)")
	syntax := fs.Bool("syntax", false, "check the file alone: do not start the plugins it declares (no checksum, handshake or schema checks)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: kite check [-f kite.hcl] [file]

Check validates a kite.hcl as strictly as a server or client starting
from it would: syntax, attribute names and types, durations and sizes,
references between blocks, against the implementations linked into this
binary; and for each plugin block, that the executable exists and
matches its sha256, starts, answers the handshake, serves the declared
kind, and that the blocks it serves match the schema it reports. The
plugins are stopped again. With -syntax only the file is checked. Errors
are printed as file:line:col with the source line.

Exit status: 0 valid, 1 invalid, 2 usage error.

Flags:`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	path := *file
	switch fs.NArg() {
	case 0:
		if path == "" {
			path = defaultConfigPath()
		}
	case 1:
		if isFlagSet(fs, "f") {
			fmt.Fprintln(stderr, "kite check: give the file either with -f or as an argument, not both")
			return exitUsage
		}
		path = fs.Arg(0)
	default:
		fmt.Fprintf(stderr, "kite check: one file at a time (got %d arguments)\n", fs.NArg())
		return exitUsage
	}

	var f *config.File
	var err error
	if *syntax {
		f, err = config.Load(path, spi.Default)
	} else {
		// Warnings are printed below, not logged by the stack.
		f, err = stack.Check(path, stack.WithLogger(hclog.NewNullLogger()))
	}
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			_ = ce.Format(stderr)
			n := 0
			for _, d := range ce.Diags {
				if d.Severity == hcl.DiagError {
					n++
				}
			}
			fmt.Fprintf(stderr, "%s: %d error%s\n", path, n, plural(n))
		} else {
			fmt.Fprintf(stderr, "kite check: %v\n", err)
		}
		return exitError
	}
	if len(f.Warnings) > 0 {
		_ = config.FormatDiagnostics(stderr, f.Warnings, f.Files)
	}
	fmt.Fprintf(stdout, "%s: ok (%s)\n", path, summary(f))
	return exitOK
}

func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// summary counts what the file declares, e.g. "1 registry, 1 server, 1 client".
func summary(f *config.File) string {
	parts := []string{}
	add := func(n int, one, many string) {
		if n == 0 {
			return
		}
		w := many
		if n == 1 {
			w = one
		}
		parts = append(parts, fmt.Sprintf("%d %s", n, w))
	}
	add(len(f.Plugins), "plugin", "plugins")
	add(len(f.Registries), "registry", "registries")
	add(len(f.Balancers), "balancer", "balancers")
	add(len(f.Filters), "filter", "filters")
	add(len(f.Codecs), "codec", "codecs")
	add(len(f.Compressors), "compressor", "compressors")
	add(len(f.Servers), "server", "servers")
	add(len(f.Clients), "client", "clients")
	if len(parts) == 0 {
		return "empty"
	}
	return strings.Join(parts, ", ")
}
