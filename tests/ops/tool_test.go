package ops

// Runs last (files run in name order), so the kite binary TestMain builds
// in the background is usually ready by then.

import (
	"bytes"
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// build is a `go build` running in the background.
type build struct {
	path string
	out  []byte
	err  error
	done chan struct{}
}

// kiteBin is the kite CLI, built by TestMain while other tests run.
var kiteBin *build

func startBuild(path, pkg string) *build {
	b := &build{path: path, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		b.out, b.err = exec.CommandContext(ctx, "go", "build", "-o", path, pkg).CombinedOutput()
	}()
	return b
}

// buildKite returns the path of the kite CLI binary.
func buildKite(t *testing.T) string {
	t.Helper()
	if kiteBin == nil {
		t.Fatal("the kite binary was not built (TestMain)")
	}
	<-kiteBin.done
	require.NoError(t, kiteBin.err, "building cmd/kite: %s", kiteBin.out)
	return kiteBin.path
}

func runKite(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), o.String(), e.String()
	}
	require.NoError(t, err)
	return 0, o.String(), e.String()
}

// TestKiteCallHealthCheck asks a stack-served server for its health
// through the CLI binary, as an operator would.
func TestKiteCallHealthCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the kite binary")
	}
	bin := buildKite(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "kite.hcl", hcl(adminStack, "{{DIR}}", dir))
	serve(t, path, "echo", &echo{name: "a"})

	code, out, errOut := runKite(t, bin, "call", "-f", path, "-compact", "echo", "Health.Check", "{}")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, `{"status":"SERVING"}`+"\n", out)

	code, out, errOut = runKite(t, bin, "call", "-f", path, "-compact", "echo", "Health.Check", `{"service":"Echo"}`)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, `{"status":"SERVING"}`+"\n", out)

	code, _, errOut = runKite(t, bin, "call", "-f", path, "echo", "Health.Check", `{"service":"Nope"}`)
	assert.Equal(t, 1, code)
	assert.Equal(t, "kite call: NotFound: health: unknown service \"Nope\"\n", errOut)
}
