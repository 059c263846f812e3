package main

import (
	"fmt"
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
// and this plugin built as a binary — on the example's .proto and on
// internal/testpb/eco (eco.v1 and eco.v2 both declaring service
// Inventory) and checks that the committed output is exactly what it
// produces: the Kite stubs name each service by its full proto name.
func TestRegenerateGreeter(t *testing.T) {
	protoc := testkit.Tool(t, "protoc", "Debian: apt-get install protobuf-compiler (scripts/ensure-tools.sh; make test runs it)")
	testkit.Tool(t, "protoc-gen-go", "scripts/ensure-tools.sh builds it at go.mod's google.golang.org/protobuf version into .kite/bin (make test runs it)")
	tmp := t.TempDir()
	plugin := filepath.Join(tmp, "protoc-gen-kite")
	build := exec.Command("go", "build", "-o", plugin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	for i, tc := range []struct {
		dir     string   // source directory, under the repository
		protos  []string // relative to dir
		outputs []string // generated files checked, relative to dir
		regen   string   // where go generate runs
	}{
		{"examples/proto-greeter/greeterpb", []string{"greeter.proto"}, []string{"greeter_kite.pb.go", "greeter.pb.go"}, "./examples/proto-greeter/greeterpb"},
		{"internal/testpb/eco", []string{"ecov1/inventory.proto", "ecov2/inventory.proto"},
			[]string{"ecov1/inventory_kite.pb.go", "ecov1/inventory.pb.go", "ecov2/inventory_kite.pb.go", "ecov2/inventory.pb.go"}, "./internal/testpb/eco"},
	} {
		src := filepath.Join(repoRoot(t), filepath.FromSlash(tc.dir))
		gen := filepath.Join(tmp, fmt.Sprint("out", i))
		require.NoError(t, os.Mkdir(gen, 0o755))
		args := append([]string{"--plugin=protoc-gen-kite=" + plugin,
			"--go_out=" + gen, "--go_opt=paths=source_relative",
			"--kite_out=" + gen, "--kite_opt=paths=source_relative",
			"-I", src}, tc.protos...)
		out, err = exec.Command(protoc, args...).CombinedOutput()
		require.NoError(t, err, "%s", out)

		for _, name := range tc.outputs {
			want, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(name)))
			require.NoError(t, err)
			got, err := os.ReadFile(filepath.Join(gen, filepath.FromSlash(name)))
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got), "%s/%s is stale: run go generate %s", tc.dir, name, tc.regen)
		}
	}
	eco, err := os.ReadFile(filepath.Join(tmp, "out1", "ecov2", "inventory_kite.pb.go"))
	require.NoError(t, err)
	assert.Contains(t, string(eco), `Inventory_Get_FullMethodName       = "eco.v2.Inventory.Get"`)
	// A method keeps its .proto name on the wire (gRPC's path uses it).
	assert.Contains(t, string(eco), `Inventory_GetLegacy_FullMethodName = "eco.v2.Inventory.get_legacy"`)
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
