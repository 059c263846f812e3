package plugin

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/spi"
)

// A plugin stopped by SIGTERM (as systemd or `timeout` stop a whole
// process group, the host included) is logged at INFO, not as an ERROR
// crash, and still restarted while the host goes on; a SIGKILL is an
// error.
func TestSignalStopIsNotLoggedAsACrash(t *testing.T) {
	var out testkit.SyncBuffer
	log := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Info})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, p, err := Load(ctx, Decl{Kind: spi.KindFilter, Name: "test-filter", Path: testPlugin, SHA256: fileSum(testPlugin),
		Args: []string{string(spi.KindFilter)}}, log)
	require.NoError(t, err)
	defer p.Close()

	pid := p.Pid()
	require.NoError(t, syscall.Kill(pid, syscall.SIGTERM))
	eventually(t, "restarted after SIGTERM", func() bool { return p.Running() && p.Pid() != pid })
	logs := out.String()
	assert.Contains(t, logs, "[INFO]  filter.test-filter: plugin stopped by a signal; restarting unless the host is stopping")
	assert.NotContains(t, logs, "[ERROR]")

	pid = p.Pid()
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	eventually(t, "restarted after SIGKILL", func() bool { return p.Running() && p.Pid() != pid })
	assert.True(t, strings.Contains(out.String(), "[ERROR] filter.test-filter: plugin exited; restarting"), out.String())
}
