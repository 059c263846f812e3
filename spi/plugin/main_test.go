package plugin

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/spi"
)

// testPlugin is the path of testdata/testplugin, built once per run.
var testPlugin string

// binDir holds the binaries built for this run.
var binDir string

var built sync.Map // package dir → func() (string, error)

// buildMain builds the main package in dir (relative to the module root)
// once per run, returning the binary's path.
func buildMain(dir string) (string, error) {
	f, _ := built.LoadOrStore(dir, sync.OnceValues(func() (string, error) {
		out := filepath.Join(binDir, filepath.Base(dir))
		// Without symbols the link step is a quarter cheaper.
		cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", out, "./"+dir)
		cmd.Dir = "../.."
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build ./%s: %v\n%s", dir, err, b)
		}
		return out, nil
	}))
	return f.(func() (string, error))()
}

func TestMain(m *testing.M) {
	if os.Getenv("KITE_PLUGIN_TEST_HOST") != "" {
		runTestHost()
		return
	}
	dir, err := os.MkdirTemp("", "kite-plugin-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	testPlugin, err = buildMain("spi/plugin/testdata/testplugin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "building test plugin:", err)
		os.Exit(1)
	}
	restartMinBackoff = 20 * time.Millisecond
	restartMaxBackoff = 200 * time.Millisecond
	code := m.Run()
	Shutdown()
	os.RemoveAll(dir)
	if code == 0 {
		// The spawner's thread is locked for the life of the process on
		// purpose (see spawn).
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/kiterpc/kite/spi/plugin.spawnLoop")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// runTestHost is the body of the host subprocess of TestNoOrphan: it
// loads a plugin, prints its pid and waits to be killed.
func runTestHost() {
	path := os.Getenv("KITE_PLUGIN_TEST_HOST")
	_, p, err := Load(context.Background(), Decl{
		Kind: spi.KindRegistry, Name: "mem", Path: path, SHA256: fileSum(path), Args: []string{"registry"},
	}, nil)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Printf("pid=%d sock=%s\n", p.Pid(), p.socket())
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin)) // until killed
	os.Exit(0)
}

func fileSum(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func testLogger() hclog.Logger {
	if os.Getenv("KITE_PLUGIN_TEST_LOG") != "" {
		return hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Debug})
	}
	return hclog.NewNullLogger()
}

// loadEntry starts the test plugin serving kind.
func loadEntry(tb testing.TB, kind spi.Kind) (spi.Entry, *Process) {
	tb.Helper()
	return loadEntryWith(tb, kind, nil)
}

// loadEntryWith is loadEntry with the declaration changed by edit.
func loadEntryWith(tb testing.TB, kind spi.Kind, edit func(*Decl)) (spi.Entry, *Process) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := Decl{
		Kind: kind, Name: "test-" + string(kind), Path: testPlugin, SHA256: fileSum(testPlugin),
		Args: []string{string(kind)},
	}
	if edit != nil {
		edit(&d)
	}
	e, p, err := Load(ctx, d, testLogger())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	if e.Kind != kind || e.Source != testPlugin || e.Version != "1.0.0" {
		tb.Fatalf("entry = %+v", e)
	}
	return e, p
}

// load starts the test plugin serving kind and builds one implementation.
func load(tb testing.TB, kind spi.Kind, cfg string) (any, *Process) {
	tb.Helper()
	e, p := loadEntry(tb, kind)
	v, err := e.New(spi.Config(cfg))
	if err != nil {
		tb.Fatal(err)
	}
	return v, p
}

// loadWith is load with the declaration changed by edit.
func loadWith(tb testing.TB, kind spi.Kind, cfg string, edit func(*Decl)) (any, *Process) {
	tb.Helper()
	e, p := loadEntryWith(tb, kind, edit)
	v, err := e.New(spi.Config(cfg))
	if err != nil {
		tb.Fatal(err)
	}
	return v, p
}

// eventually polls cond until it holds or 30 s pass (generous: a plugin
// restart includes a process start and a TLS handshake, slow on a loaded
// machine).
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
