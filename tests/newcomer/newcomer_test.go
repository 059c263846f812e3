package newcomer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/internal/testkit"
)

// bins holds the echo example and the kite CLI, built once by TestMain.
var bins string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kite-newcomer")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins = dir
	for _, pkg := range []string{"./examples/echo", "./cmd/kite"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

const root = "../.."

// env is a demo environment: the binaries, and a directory holding a copy
// of the repository's kite.hcl with the server on a free port.
type env struct {
	dir, echo, kite string
	extra           []string // environment for every command
}

func setup(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{dir: dir, echo: filepath.Join(bins, "echo"), kite: filepath.Join(bins, "kite"),
		// The local registry's default directory: private to this test.
		extra: []string{"XDG_RUNTIME_DIR=" + dir}}
	src, err := os.ReadFile(filepath.Join(root, "kite.hcl"))
	require.NoError(t, err)
	const listen = `listen   = "127.0.0.1:9000"`
	require.Contains(t, string(src), listen, "kite.hcl's server no longer listens where the README says")
	hcl := strings.Replace(string(src), listen, fmt.Sprintf(`listen   = %q`, freeAddr(t)), 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kite.hcl"), []byte(hcl), 0o644))
	return e
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// server is the echo example's server running in the background.
type server struct {
	cmd  *exec.Cmd
	out  *testkit.SyncBuffer
	done chan error
}

func (e *env) startServer(t *testing.T, args []string) *server {
	t.Helper()
	cmd := exec.Command(e.echo, args...)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), e.extra...)
	pr, pw := io.Pipe()
	s := &server{cmd: cmd, out: &testkit.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout = io.MultiWriter(s.out, pw)
	cmd.Stderr = s.out
	require.NoError(t, cmd.Start())
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "server: Echo serving on ") {
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() { s.done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-s.done
		}
	})
	select {
	case <-ready:
	case err := <-s.done:
		t.Fatalf("echo server exited before serving: %v\n%s", err, s.out.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("echo server not serving after 20s:\n%s", s.out.String())
	}
	return s
}

// stop sends SIGTERM, as `kill %1` does, and expects a graceful exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-s.done:
		require.NoError(t, err, s.out.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("echo server did not exit 20s after SIGTERM:\n%s", s.out.String())
	}
	assert.Contains(t, s.out.String(), "server: shut down gracefully")
}

func (e *env) run(t *testing.T, bin string, args ...string) (string, string, error) {
	t.Helper()
	return e.runIn(t, e.dir, bin, args...)
}

func (e *env) runIn(t *testing.T, dir, bin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), e.extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// fields splits a shell command line the way sh would for the simple
// lines the README uses: words, 'single-quoted' words, a trailing # comment.
func fields(t *testing.T, line string) []string {
	var out []string
	var cur strings.Builder
	in, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted:
			if c == '\'' {
				quoted = false
			} else {
				cur.WriteByte(c)
			}
		case c == '\'':
			quoted, in = true, true
		case c == '#' && !in:
			i = len(line)
		case c == ' ' || c == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	require.False(t, quoted, "unbalanced quote in %q", line)
	if in {
		out = append(out, cur.String())
	}
	return out
}

// nextSteps returns the command lines of the README's "Next steps" block.
func nextSteps(t *testing.T) []string {
	src, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(src), "\n## Next steps\n")
	require.True(t, ok, "README.md has no \"## Next steps\" section")
	_, block, ok := strings.Cut(after, "```sh\n")
	require.True(t, ok, "the Next steps section has no ```sh block")
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestREADMENextSteps(t *testing.T) {
	e := setup(t)
	var bg *server
	ran := 0
	for _, line := range nextSteps(t) {
		w := fields(t, line)
		require.NotEmpty(t, w, line)
		background := w[len(w)-1] == "&"
		if background {
			w = w[:len(w)-1]
		}
		switch {
		case len(w) >= 3 && w[0] == "go" && w[1] == "run" && w[2] == "./examples/echo":
			require.True(t, background, "%s: the README starts the server in the background", line)
			require.Nil(t, bg, "a second background server")
			bg = e.startServer(t, w[3:])
		case len(w) >= 3 && w[0] == "go" && w[1] == "run" && w[2] == "./cmd/kite":
			require.NotNil(t, bg, "%s runs before the server is started", line)
			out, errs, err := e.run(t, e.kite, w[3:]...)
			require.NoError(t, err, "%s\nstdout: %s\nstderr: %s", line, out, errs)
			switch w[3] {
			case "registry":
				assert.Regexp(t, `(?m)^echo\s+127\.0\.0\.1:\d+\s+100\s`, out)
			case "call":
				assert.Contains(t, out, `"text": "hi"`)
			case "bench":
				assert.Regexp(t, `(?m)\d+ calls`, out+errs)
				assert.NotContains(t, out, "errors by code")
			}
		case len(w) == 2 && w[0] == "kill" && w[1] == "%1":
			require.NotNil(t, bg)
			bg.stop(t)
			bg = nil
		default:
			t.Fatalf("README Next steps: this test does not know how to run %q; teach it, or change the README", line)
		}
		ran++
	}
	assert.Nil(t, bg, "the README leaves the server running")
	assert.GreaterOrEqual(t, ran, 4)
}

// TestCLIHelpExamplesAndKiteHCLMethods runs every "kite <cmd> ..." example
// line of the CLI's help texts, and calls every method kite.hcl names,
// against the echo server of kite.hcl.
func TestCLIHelpExamplesAndKiteHCLMethods(t *testing.T) {
	e := setup(t)
	srv := e.startServer(t, []string{"server"})
	defer srv.stop(t)

	help, _, err := e.run(t, e.kite, "help")
	require.NoError(t, err)
	cmds := regexp.MustCompile(`(?m)^  ([a-z]+)\s{2,}`).FindAllStringSubmatch(help, -1)
	require.NotEmpty(t, cmds, help)
	// "kite call …", or what a //go:generate line runs: "go run
	// github.com/kiterpc/kite/cmd/kite gen …".
	example := regexp.MustCompile(`(?:^\s*|/cmd/)kite ([a-z]+) (.*)$`)
	examples := 0
	for _, c := range cmds {
		out, errs, _ := e.run(t, e.kite, c[1], "--help")
		text := out + errs
		sc := bufio.NewScanner(strings.NewReader(text))
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(strings.TrimSpace(line), "Usage:") {
				continue
			}
			m := example.FindStringSubmatch(line)
			if m == nil || strings.HasSuffix(m[1], ":") || strings.HasPrefix(m[2], ":") || strings.Contains(m[2], "<") || strings.Contains(m[2], "[") {
				continue // output examples ("kite call: NotFound: …") and synopses
			}
			args := append([]string{m[1]}, fields(t, m[2])...)
			dir := e.dir
			switch m[1] {
			case "bench":
				args = append(args, "-d", "1s") // the example's duration, shortened
			case "gen":
				dir = genPackage(t, args)
			}
			out, errs, err := e.runIn(t, dir, e.kite, args...)
			if m[1] == "gen" {
				_, serr := os.Stat(filepath.Join(dir, "userservice_kite.go"))
				assert.NoError(t, serr, "kite gen wrote no userservice_kite.go")
			}
			assert.NoError(t, err, "help example %q (from kite %s --help)\nstdout: %s\nstderr: %s", line, c[1], out, errs)
			examples++
		}
	}
	assert.GreaterOrEqual(t, examples, 1, "no runnable example found in the CLI's help")

	src, err := os.ReadFile(filepath.Join(root, "kite.hcl"))
	require.NoError(t, err)
	methods := regexp.MustCompile(`(?m)^\s*method\s+"([^"]+)"`).FindAllStringSubmatch(string(src), -1)
	require.NotEmpty(t, methods, "kite.hcl names no method")
	for _, m := range methods {
		out, errs, err := e.run(t, e.kite, "call", "echo", m[1], `{"text":"x"}`)
		assert.NoError(t, err, "kite.hcl names method %q: kite call: %s%s", m[1], out, errs)
	}
}

// genPackage writes a module with the interface a `kite gen -type X`
// example names, as a user following the help would have it.
func genPackage(t *testing.T, args []string) string {
	t.Helper()
	typ := ""
	for i, a := range args {
		if a == "-type" && i+1 < len(args) {
			typ = args[i+1]
		}
	}
	require.NotEmpty(t, typ, "kite gen example without -type: %v", args)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/users\n\ngo 1.24\n"), 0o644))
	src := fmt.Sprintf(`package users

import "context"

type User struct {
	ID   int64
	Name string
}

type %s interface {
	//kite:idempotent
	GetByID(ctx context.Context, id int64) (*User, error)
}
`, typ)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "users.go"), []byte(src), 0o644))
	return dir
}

// TestREADMEComponentsAreLinked: every codec, compressor, registry,
// balancer and filter the README's "What is in the box" table names is
// one the kite CLI has linked in, so `kite check`, `kite call` and
// `kite plugins` know every name a reader copies from the README.
func TestREADMEComponentsAreLinked(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	out, errs, err := (&env{dir: t.TempDir()}).run(t, filepath.Join(bins, "kite"), "plugins")
	require.NoError(t, err, errs)
	linked := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			linked[f[0]+" "+f[1]] = true
		}
	}
	names := regexp.MustCompile("`([a-z0-9_]+)`")
	row := func(area string) string {
		m := regexp.MustCompile(`(?m)^\| ` + area + ` \| (.*) \|$`).FindStringSubmatch(string(src))
		require.NotNil(t, m, "README has no %q row", area)
		return m[1]
	}
	check := func(kind, text string) {
		found := names.FindAllStringSubmatch(text, -1)
		require.NotEmpty(t, found, "no %s names in %q", kind, text)
		for _, n := range found {
			assert.True(t, linked[kind+" "+n[1]], "README names %s %q, but `kite plugins` does not list it:\n%s", kind, n[1], out)
		}
	}
	codecs, compressors, ok := strings.Cut(row("codecs"), "compressors")
	require.True(t, ok)
	check("codec", codecs)
	check("compressor", compressors)
	check("registry", row("discovery"))
	check("balancer", row("balancing"))
	check("filter", row("filters"))
}
