package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

// moduleRoot is the repository root, relative to this package's directory
// (where go test runs the test binary).
const moduleRoot = "../.."

// buildConcurrency bounds parallel `go build`s: each link is CPU- and
// memory-hungry and the machines running this are small and shared.
const buildConcurrency = 2

// binary is one plugin executable built for this run.
type binary struct {
	dir  string // package dir relative to the module root
	path string
	sum  string // hex sha256
	err  error
}

// binaries maps a binary's name (kite-<kind>-<name>) to its build.
var binaries map[string]*binary

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse() // for testing.Verbose and -run before the builds
	dir, err := os.MkdirTemp("", "kite-bridge-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	if binaries, err = buildAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "built %d plugin binaries in %v\n", len(binaries), time.Since(start).Round(time.Millisecond))
	}
	code := m.Run()
	// Ends any plugin process a failed test left behind.
	plugin.Shutdown()
	if code == 0 {
		// spi/plugin starts plugins from one OS thread locked for the life
		// of the process, on purpose (the parent-death signal follows the
		// forking thread).
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/kiterpc/kite/spi/plugin.spawnLoop")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// buildAll builds every plugins/*/cmd/* main into dir. One `go build`
// of all of them, buildConcurrency packages at a time, is much cheaper
// than one per binary (it loads the package graph once). If it fails, the
// mains are built one by one, buildConcurrency at a time, so that a
// broken main fails only the tests that need it.
func buildAll(dir string) (map[string]*binary, error) {
	mains, err := filepath.Glob(filepath.Join(moduleRoot, "plugins", "*", "cmd", "*", "main.go"))
	if err != nil {
		return nil, err
	}
	if len(mains) == 0 {
		return nil, fmt.Errorf("no plugin mains under %s/plugins/*/cmd", moduleRoot)
	}
	sort.Strings(mains)
	out := make(map[string]*binary, len(mains))
	args := []string{"build", "-p", strconv.Itoa(buildConcurrency), ldflags, "-o", dir + string(filepath.Separator)}
	for _, m := range mains {
		pkg, _ := filepath.Rel(moduleRoot, filepath.Dir(m))
		b := &binary{dir: filepath.ToSlash(pkg), path: filepath.Join(dir, filepath.Base(pkg))}
		out[filepath.Base(pkg)] = b
		args = append(args, "./"+b.dir)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleRoot
	if err := cmd.Run(); err == nil {
		for _, b := range out {
			b.err = b.hash()
		}
		return out, nil
	}
	sem := make(chan struct{}, buildConcurrency)
	var wg sync.WaitGroup
	for _, b := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			b.err = b.build()
		}()
	}
	wg.Wait()
	return out, nil
}

// ldflags drops symbols: the link is a quarter cheaper. The plugins run
// without the race detector; the host side is what runs under test here.
const ldflags = "-ldflags=-s -w"

func (b *binary) build() error {
	cmd := exec.Command("go", "build", ldflags, "-o", b.path, "./"+b.dir)
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./%s: %v\n%s", b.dir, err, out)
	}
	return b.hash()
}

// hash records the binary's sha256, as a kite.hcl plugin block states it.
func (b *binary) hash() error {
	f, err := os.Open(b.path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	b.sum = hex.EncodeToString(h.Sum(nil))
	return nil
}

func testLogger() hclog.Logger {
	if os.Getenv("KITE_BRIDGE_TEST_LOG") != "" {
		return hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Debug})
	}
	return hclog.NewNullLogger()
}

// load starts the plugin binary name (kite-<kind>-<plugin>) as the host
// does for a kite.hcl `plugin "<kind>" "<name>"` block and returns its
// catalog entry. The process ends with the test.
func load(t *testing.T, name string, kind spi.Kind, implName string) spi.Entry {
	t.Helper()
	b, ok := binaries[name]
	if !ok {
		t.Fatalf("no plugins/*/cmd/%s main: every plugin ships a binary", name)
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, p, err := plugin.Load(ctx, plugin.Decl{Kind: kind, Name: implName, Path: b.path, SHA256: b.sum}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if e.Kind != kind || e.Name != implName || e.Source != b.path || e.Version == "" {
		t.Fatalf("entry of %s = %+v", name, e)
	}
	// The entry describes the same plugin as the compiled-in one.
	if ce, ok := spi.Default.Lookup(kind, implName); ok {
		if ce.Version != e.Version || len(ce.Schema) != len(e.Schema) {
			t.Errorf("%s serves %s %q version %s with %d schema fields; compiled in it is version %s with %d",
				name, kind, implName, e.Version, len(e.Schema), ce.Version, len(ce.Schema))
		}
	}
	return e
}

// build builds an implementation from e with cfg and closes it with the
// test.
func build[T any](t *testing.T, e spi.Entry, cfg string) T {
	t.Helper()
	v, err := e.New(spi.Config(cfg))
	if err != nil {
		t.Fatalf("%s %q with %s: %v", e.Kind, e.Name, cfg, err)
	}
	t.Cleanup(func() {
		if c, ok := v.(spi.Closer); ok {
			_ = c.Close()
		}
	})
	impl, ok := v.(T)
	if !ok {
		t.Fatalf("%s %q built a %T", e.Kind, e.Name, v)
	}
	return impl
}

// compiled builds the compiled-in implementation of (kind, name).
func compiled[T any](t *testing.T, kind spi.Kind, name, cfg string) T {
	t.Helper()
	e, ok := spi.Default.Lookup(kind, name)
	if !ok {
		t.Fatalf("no compiled-in %s %q", kind, name)
	}
	return build[T](t, e, cfg)
}

// TestEveryPluginShipsABinary checks that each plugin directory has a
// main serving it, and that every binary built.
func TestEveryPluginShipsABinary(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(moduleRoot, "plugins", "*", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	served := make(map[string]bool)
	for _, b := range binaries {
		served[strings.Split(b.dir, "/")[1]] = true
		if b.err != nil {
			t.Error(b.err)
		}
	}
	for _, d := range dirs {
		if p := filepath.Base(filepath.Dir(d)); !served[p] {
			t.Errorf("plugins/%s has no cmd/kite-<kind>-<name>/main.go serving it out of process", p)
		}
	}
}
