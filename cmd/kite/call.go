package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"
)

func init() {
	register(command{name: "call", summary: "invoke a method with a JSON request, print the JSON response", run: runCall})
}

func runCall(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kite call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addCommonFlags(fs)
	timeout := fs.Duration("timeout", 0, "deadline of the call (default: the client block's timeout)")
	compact := fs.Bool("compact", false, "print the response on one line instead of indented")
	var md metaFlag
	fs.Var(&md, "H", "request metadata `key=value` (repeatable), e.g. -H authorization=token")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: kite call [flags] <client> <Service.Method> [json]

Call invokes Service.Method through the client block <client> of kite.hcl
(its registry or targets, balancer, filters, timeouts) with the JSON
request and prints the JSON response on stdout. The request travels in
the JSON codec whatever codec the block names; servers answer each caller
in its own codec. json is the request itself, @file to read it from a
file, or - for stdin; it defaults to {}.

On failure the status code and message go to stderr, e.g.
  kite call: NotFound: no user 7

Exit status: 0 success, 1 the call or the configuration failed, 2 usage error.

Flags:`)
		fs.PrintDefaults()
	}
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	target, ok := parseCallTarget(fs, "kite call", pos, stderr)
	if !ok || !timeoutValid(fs, "kite call", *timeout, stderr) {
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, c, code := target.dial(cf, "kite call", *timeout, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	var resp json.RawMessage
	if err := c.Call(md.attach(ctx), target.method, target.req, &resp); err != nil {
		printCallError(stderr, "kite call", err)
		return exitError
	}
	var out bytes.Buffer
	var err error
	if *compact {
		err = json.Compact(&out, resp)
	} else {
		err = json.Indent(&out, resp, "", "  ")
	}
	if err != nil {
		// Not JSON after all (a raw-codec method): print it as it came.
		out.Reset()
		out.Write(resp)
	}
	out.WriteByte('\n')
	_, _ = stdout.Write(out.Bytes())
	return exitOK
}

// callTarget is what call and bench are pointed at, from their positional
// arguments <client> <Service.Method> [json].
type callTarget struct {
	client string
	method string
	req    json.RawMessage
}

// parseCallTarget reads pos as <client> <Service.Method> [json], the
// request defaulting to {}. On a usage error it says why on stderr,
// prefixed with cmd, and returns false: the caller exits with exitUsage.
func parseCallTarget(fs *flag.FlagSet, cmd string, pos []string, stderr io.Writer) (callTarget, bool) {
	if len(pos) < 2 || len(pos) > 3 {
		fmt.Fprintf(stderr, "%s: want <client> <Service.Method> [json]\n", cmd)
		fs.Usage()
		return callTarget{}, false
	}
	t := callTarget{client: pos[0], method: pos[1]}
	if err := checkMethod(t.method); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return callTarget{}, false
	}
	body := "{}"
	if len(pos) == 3 {
		body = pos[2]
	}
	req, err := readRequest(body)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return callTarget{}, false
	}
	t.req = req
	return t, true
}

// dial loads the stack and builds the client block t names with
// callClientOptions. On failure it has said why on stderr and returns a
// nil stack and the exit code; otherwise the caller closes the stack.
func (t callTarget) dial(cf *commonFlags, cmd string, timeout time.Duration, stderr io.Writer) (*stack.Stack, *core.Client, int) {
	st, code := cf.load(stderr)
	if st == nil {
		return nil, nil, code
	}
	c, err := st.Client(t.client, callClientOptions(timeout)...)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		_ = st.Close()
		return nil, nil, exitError
	}
	return st, c, exitOK
}

// callClientOptions are the client options of call and bench: JSON
// bodies, and the -timeout flag when given.
func callClientOptions(timeout time.Duration) []stack.ClientOption {
	opts := []stack.ClientOption{stack.ClientCodecName("json")}
	if timeout > 0 {
		opts = append(opts, stack.ClientTimeout(timeout))
	}
	return opts
}

func checkMethod(m string) error {
	svc, name, ok := strings.Cut(m, ".")
	if !ok || svc == "" || name == "" {
		return fmt.Errorf("method %q: want Service.Method, e.g. Echo.Say", m)
	}
	return nil
}

// readRequest returns the request JSON from a literal, @file or - (stdin).
func readRequest(arg string) (json.RawMessage, error) {
	var raw []byte
	switch {
	case arg == "-":
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return nil, fmt.Errorf("reading the request from stdin: %w", err)
		}
		raw = b
	case strings.HasPrefix(arg, "@"):
		b, err := os.ReadFile(arg[1:])
		if err != nil {
			return nil, fmt.Errorf("reading the request: %w", err)
		}
		raw = b
	default:
		raw = []byte(arg)
	}
	raw = bytes.TrimSpace(raw)
	if !json.Valid(raw) {
		var v any
		err := json.Unmarshal(raw, &v)
		return nil, fmt.Errorf("the request is not valid JSON: %v", err)
	}
	return json.RawMessage(raw), nil
}

// printCallError prints a call's failure as "<prefix>: <Code>: <message>".
func printCallError(w io.Writer, prefix string, err error) {
	e := spi.AsError(err)
	msg := e.Message
	if msg == "" {
		msg = e.Code.String()
	}
	fmt.Fprintf(w, "%s: %s: %s\n", prefix, e.Code, msg)
	if len(e.Details) > 0 {
		fmt.Fprintf(w, "%s: details: %q\n", prefix, e.Details)
	}
}

// ---------------------------------------------------------------------
// Helpers shared by the subcommands that load a stack (call, plugins,
// registry, bench).

// commonFlags are the flags of every stack-loading subcommand.
type commonFlags struct {
	file    *string
	verbose *bool
}

func addCommonFlags(fs *flag.FlagSet) *commonFlags {
	return &commonFlags{
		file:    fs.String("f", "", "kite.hcl `file` (default $KITE_CONFIG, else ./kite.hcl)"),
		verbose: fs.Bool("v", false, "log debug messages (plugins, connections, calls) to stderr"),
	}
}

func (c *commonFlags) path() string {
	if *c.file != "" {
		return *c.file
	}
	return defaultConfigPath()
}

// logger is the CLI's logger: warnings and errors on stderr, everything
// with -v. hclog's default, which compiled-in plugins and filters such as
// "log" write to, shows only errors without -v: the CLI reports a failed
// call itself, and a "log" filter's WARN line for the same call would say
// it twice.
func (c *commonFlags) logger(stderr io.Writer) hclog.Logger {
	level, plugins := hclog.Warn, hclog.Error
	if *c.verbose {
		level, plugins = hclog.Debug, hclog.Debug
	}
	hclog.SetDefault(hclog.New(&hclog.LoggerOptions{Name: "kite", Level: plugins, Output: stderr}))
	return hclog.New(&hclog.LoggerOptions{Name: "kite", Level: level, Output: stderr})
}

// load loads the stack, printing configuration errors with their source
// lines. It returns nil and the exit code on failure.
func (c *commonFlags) load(stderr io.Writer) (*stack.Stack, int) {
	path := c.path()
	st, err := stack.Load(path, stack.WithLogger(c.logger(stderr)))
	if err != nil {
		printLoadError(stderr, path, err)
		return nil, exitError
	}
	return st, exitOK
}

func printLoadError(stderr io.Writer, path string, err error) {
	var ce *config.Error
	if errors.As(err, &ce) {
		_ = ce.Format(stderr)
		fmt.Fprintf(stderr, "kite: %s is invalid (kite check -f %s)\n", path, path)
		return
	}
	fmt.Fprintf(stderr, "kite: %v\n", err)
}

// parseArgs parses flags placed anywhere among the positional arguments
// (kite bench echo Echo.Say '{}' -c 50 reads naturally); after "--"
// everything is positional. ok is false when the caller should return
// code, as with parseFlags.
func parseArgs(fs *flag.FlagSet, args []string, stdout io.Writer) (pos []string, code int, ok bool) {
	for {
		if code, ok := parseFlags(fs, args, stdout); !ok {
			return nil, code, false
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), exitOK, true
		}
		if len(rest) == 0 {
			return pos, exitOK, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseFlags parses args with fs as every subcommand does. ok is false
// when the caller should return code: 0 after --help (the usage printed
// on stdout), 2 after a usage error (flag has said which on stderr).
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (code int, ok bool) {
	// Answer --help before parsing, so the usage goes to stdout once
	// (flag would print it to the error output first).
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return exitOK, false
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return exitOK, false
		}
		return exitUsage, false
	}
	return exitOK, true
}

// metaFlag collects -H key=value pairs.
type metaFlag struct{ spi.Metadata }

func (m *metaFlag) String() string {
	var parts []string
	m.Range(func(k, v string) bool {
		parts = append(parts, k+"="+v)
		return true
	})
	return strings.Join(parts, ",")
}

// attach returns ctx carrying the collected metadata, or ctx itself when
// no -H was given.
func (m *metaFlag) attach(ctx context.Context) context.Context {
	if m.Len() == 0 {
		return ctx
	}
	return core.WithMetadata(ctx, &m.Metadata)
}

func (m *metaFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	m.Add(strings.ToLower(k), v)
	return nil
}

// timeoutValid refuses an explicit -timeout that is zero or negative:
// such a deadline cannot be met, and quietly falling back to the client
// block's timeout would hide the mistake. Left out, the block's applies.
func timeoutValid(fs *flag.FlagSet, cmd string, timeout time.Duration, stderr io.Writer) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "timeout" })
	if set && timeout <= 0 {
		fmt.Fprintf(stderr, "%s: -timeout %s: want a positive duration such as 500ms (leave it out to use the client block's timeout)\n", cmd, timeout)
		return false
	}
	return true
}
