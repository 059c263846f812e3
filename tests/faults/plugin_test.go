package faults

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

// pluginRestartBound: a SIGKILLed plugin is running again within this
// (supervisor backoff 100 ms, then a process start and an mTLS handshake
// on a loaded machine).
const pluginRestartBound = 10 * time.Second

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestRegistryPluginCrash runs the client's registry out of process — the
// registry-local plugin binary, loaded as kite.hcl's plugin block would —
// and SIGKILLs it under load. Calls keep succeeding on the last known
// instances while the plugin is down; the supervisor restarts it, the
// watch resumes, and an instance registered afterwards reaches the client.
func TestRegistryPluginCrash(t *testing.T) {
	bin := buildMain(t, "plugins/registry-local/cmd/kite-registry-local")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	entry, proc, err := plugin.Load(ctx, plugin.Decl{
		Kind: spi.KindRegistry, Name: "local", Path: bin, SHA256: sha256File(t, bin),
	}, testLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = proc.Close() })
	assert.Equal(t, bin, entry.Source)

	dir := filepath.Join(t.TempDir(), "registry")
	cfg := `{"dir":` + jsonString(dir) + `,"poll_interval":"20ms"}`
	v, err := entry.New(spi.Config(cfg))
	require.NoError(t, err)
	bridged := v.(spi.Registry)
	t.Cleanup(func() { _ = bridged.Close() })

	// The servers register through the compiled-in registry on the same
	// directory, as server processes on the machine would.
	rc := registryCase{build: func(t *testing.T) spi.Registry {
		return buildRegistry(t, "local", map[string]string{"dir": dir, "poll_interval": "20ms"})
	}}
	registerServer(t, rc, "s1")
	registerServer(t, rc, "s2")

	c := newClient(t, core.ClientOptions{Service: service, Registry: bridged})
	waitFor(t, 5*time.Second, "two instances discovered through the plugin", hasInstances(c, 2))
	l := startLoad(t, 4, time.Second, func(ctx context.Context, seq int) error {
		_, err := echoCall(ctx, c, seq)
		return err
	})
	waitFor(t, 2*time.Second, "load running", func() bool { return l.snapshot().Codes[spi.OK] >= 50 })

	pid := proc.Pid()
	require.NotZero(t, pid)
	killed := time.Now()
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	// The bridge reports the crash to callers of the registry...
	waitFor(t, 2*time.Second, "the crash noticed", func() bool {
		rctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := bridged.Resolve(rctx, service)
		var se *spi.Error
		return !proc.Running() || (errors.As(err, &se) && se.Code == spi.Unavailable)
	})
	// ...while calls go on.
	before := l.snapshot()
	waitFor(t, pluginRestartBound, "the plugin restarted", func() bool {
		return proc.Running() && proc.Restarts() >= 1 && proc.Pid() != pid
	})
	t.Logf("plugin restarted %s after SIGKILL (pid %d → %d)", time.Since(killed).Round(time.Millisecond), pid, proc.Pid())
	assert.Len(t, c.Instances(), 2, "the last known instances are kept")

	// The watch resumes: a server registered now reaches the client.
	registerServer(t, rc, "s3")
	found := waitFor(t, discoveryBound, "an instance registered after the restart", hasInstances(c, 3))
	t.Logf("new instance discovered %s after registering", found.Round(time.Millisecond))

	r := l.finish(t)
	assert.Zero(t, r.Lost, "lost calls")
	assert.Empty(t, r.errorsOtherThan(), "no call failed while the registry plugin was down")
	assert.Greater(t, r.Codes[spi.OK], before.Codes[spi.OK], "calls went on")
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
