package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiterpc/kite/internal/gen"
)

func init() {
	register(command{name: "gen", summary: "generate typed stubs from a Go interface", run: runGen})
}

func runGen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kite gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	typ := fs.String("type", "", "name of the Go `interface` to generate stubs for (required)")
	out := fs.String("o", "", "output `file` (default <dir>/<type in lower case>_kite.go)")
	name := fs.String("name", "", "service `name` on the wire (default the interface's name)")
	tags := fs.String("tags", "", "comma-separated build `tags` to load the package with")
	verbose := fs.Bool("v", false, "report the file written")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: kite gen -type Interface [-o file] [-name service] [package dir]

Gen reads a Go interface with go/packages and go/types and writes, into
the same package:

  New<Interface>Client(c *core.Client) <Interface>
      a typed client: every method is one call through c;
  Register<Interface>(s *core.Server, impl <Interface>) error
      registration through a core.ServiceDesc whose handlers call impl
      directly, without reflection.

Interface methods must look like

  M(ctx context.Context, req Req) (Resp, error)                 unary
  M(ctx context.Context, req Req) error                         unary, empty answer
  M(ctx context.Context, req Req, send func(Resp) error) error  server-streaming

A "//kite:idempotent" line in a method's doc comment marks it safe to
retry after the request left. In a source file, use it as

  //go:generate go run github.com/kiterpc/kite/cmd/kite gen -type UserService

The package directory defaults to the current one (where go generate runs).

Flags:`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	if *typ == "" {
		fmt.Fprintln(stderr, "kite gen: -type is required (the interface to generate stubs for)")
		return exitUsage
	}
	dir := "."
	switch fs.NArg() {
	case 0:
	case 1:
		dir = fs.Arg(0)
	default:
		fmt.Fprintf(stderr, "kite gen: one package directory at a time (got %d arguments)\n", fs.NArg())
		return exitUsage
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "kite gen: %s is not a directory\n", dir)
		return exitUsage
	}
	path := *out
	if path == "" {
		path = filepath.Join(dir, strings.ToLower(*typ)+"_kite.go")
	}
	if outDir, err := filepath.Abs(filepath.Dir(path)); err == nil {
		if pkgDir, err := filepath.Abs(dir); err == nil && outDir != pkgDir {
			fmt.Fprintf(stderr, "kite gen: the stubs belong in the interface's package: %s is not in %s\n", path, dir)
			return exitUsage
		}
	}
	var tagList []string
	if *tags != "" {
		tagList = strings.Split(*tags, ",")
	}

	file, err := gen.LoadInterface(gen.LoadOptions{
		Dir: dir, Type: *typ, ServiceName: *name, Output: path, Tags: tagList,
	})
	if err != nil {
		fmt.Fprintf(stderr, "kite gen: %v\n", err)
		return exitError
	}
	src, err := gen.Emit(file)
	if err != nil {
		fmt.Fprintf(stderr, "kite gen: %v\n", err)
		return exitError
	}
	if err := writeFileAtomic(path, src); err != nil {
		fmt.Fprintf(stderr, "kite gen: %v\n", err)
		return exitError
	}
	if *verbose {
		fmt.Fprintf(stdout, "kite gen: wrote %s (%d methods of %s)\n", path, len(file.Services[0].Methods), *typ)
	}
	return exitOK
}

// writeFileAtomic replaces path with data through a temporary file in the
// same directory, so an interrupted run never leaves half a file behind
// for the compiler to trip on.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kite-gen-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
