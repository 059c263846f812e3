package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/kiterpc/kite/internal/testkit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// repoRoot is the module root (two levels up from this package).
func repoRoot(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestRegenerateGreeter runs the real toolchain — protoc, protoc-gen-go
// and this plugin built as a binary — on the example's .proto and checks
// that the committed output is exactly what it produces.
func TestRegenerateGreeter(t *testing.T) {
	protoc := testkit.Tool(t, "protoc", "Debian: apt-get install protobuf-compiler (scripts/ensure-tools.sh; make test runs it)")
	testkit.Tool(t, "protoc-gen-go", "scripts/ensure-tools.sh builds it at go.mod's google.golang.org/protobuf version into .kite/bin (make test runs it)")
	tmp := t.TempDir()
	plugin := filepath.Join(tmp, "protoc-gen-kite")
	build := exec.Command("go", "build", "-o", plugin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	src := filepath.Join(repoRoot(t), "examples", "proto-greeter", "greeterpb")
	gen := filepath.Join(tmp, "out")
	require.NoError(t, os.Mkdir(gen, 0o755))
	cmd := exec.Command(protoc, "--plugin=protoc-gen-kite="+plugin,
		"--go_out="+gen, "--go_opt=paths=source_relative",
		"--kite_out="+gen, "--kite_opt=paths=source_relative",
		"-I", src, "greeter.proto")
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	for _, name := range []string{"greeter_kite.pb.go", "greeter.pb.go"} {
		want, err := os.ReadFile(filepath.Join(src, name))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(gen, name))
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got), "%s is stale: run go generate ./examples/proto-greeter/greeterpb", name)
	}
}

func TestVersionFlag(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "protoc-gen-kite")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command(bin, "--version").Output()
	require.NoError(t, err)
	assert.Equal(t, "protoc-gen-kite v1.0.0\n", string(out))
}
