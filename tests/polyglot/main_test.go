package polyglot

import (
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

	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

// python is the interpreter the plugins run under: Debian's, which is
// where python3-grpcio installs (a python3 earlier on PATH, e.g. pyenv's,
// would not see it).
const python = "/usr/bin/python3"

// sdkDir is sdk/python relative to this package's directory.
var sdkDir = filepath.Join("..", "..", "sdk", "python")

func TestMain(m *testing.M) {
	code := m.Run()
	plugin.Shutdown()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/kiterpc/kite/spi/plugin.spawnLoop")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var pythonErr = sync.OnceValue(func() error {
	out, err := exec.Command(python, "-c", "import grpc, google.protobuf, cryptography").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s with grpcio, protobuf and cryptography is needed (bash scripts/ensure-python.sh installs them): %v\n%s", python, err, out)
	}
	return nil
})

// needPython skips the test when Python or its packages are missing, and
// fails it under CI=true, where scripts/test.sh has installed them.
func needPython(t testing.TB) {
	t.Helper()
	if err := pythonErr(); err != nil {
		testkit.Missing(t, "%v", err)
	}
}

func sha256File(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func abs(t testing.TB, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// sdkFiles are the SDK modules a Python plugin imports: declared with
// their sums, so the host refuses a changed SDK as it refuses a changed
// script.
func sdkFiles(t testing.TB) []string {
	return []string{
		abs(t, filepath.Join(sdkDir, "kite_plugin", "__init__.py")),
		abs(t, filepath.Join(sdkDir, "kite_plugin", "kiteplugin_pb2.py")),
	}
}

// example returns the path of an example plugin of the SDK.
func example(t testing.TB, name string) string {
	return abs(t, filepath.Join(sdkDir, "examples", name))
}

// pyDecl declares the Python script as a plugin of kind/name, the way a
// kite.hcl block with command = [python, script] and files does.
func pyDecl(t testing.TB, kind spi.Kind, name, script string) plugin.Decl {
	t.Helper()
	needPython(t)
	d := plugin.Decl{Kind: kind, Name: name, Path: python, SHA256: sha256File(t, python), Args: []string{script}}
	for _, f := range append([]string{script}, sdkFiles(t)...) {
		d.Files = append(d.Files, plugin.FileSum{Path: f, SHA256: sha256File(t, f)})
	}
	return d
}

func testLogger() hclog.Logger {
	if os.Getenv("KITE_POLYGLOT_TEST_LOG") != "" {
		return hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Trace})
	}
	return hclog.NewNullLogger()
}

// load starts a plugin through plugin.Load; it ends with the test.
func load(t testing.TB, d plugin.Decl) (spi.Entry, *plugin.Process) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, p, err := plugin.Load(ctx, d, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if e.Kind != d.Kind || e.Name != d.Name || e.Version == "" {
		t.Fatalf("entry = %+v", e)
	}
	return e, p
}

func build[T any](t testing.TB, e spi.Entry, cfg string) T {
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
