package ops

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// buildKite builds the kite CLI into a temporary directory.
func buildKite(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kite")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/kiterpc/kite/cmd/kite").CombinedOutput()
	require.NoError(t, err, "building cmd/kite: %s", out)
	return bin
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
