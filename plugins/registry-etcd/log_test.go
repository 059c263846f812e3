package etcd

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// syncBuffer is a bytes.Buffer safe for the client's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(level hclog.Level) (hclog.Logger, *syncBuffer) {
	var buf syncBuffer
	return hclog.New(&hclog.LoggerOptions{Name: "app", Level: level, Output: &buf}), &buf
}

// TestZapToHCLog checks the adapter: entries reach the hclog logger with
// their fields (With fields first), one level lower, and nothing below the
// logger's level is written.
func TestZapToHCLog(t *testing.T) {
	log, buf := testLogger(hclog.Debug)
	z := newZapLogger(log).Named("retry").With(zap.String("target", "etcd-endpoints://x"))
	z.Warn("retrying of unary invoker failed", zap.Int("attempt", 2), zap.Duration("backoff", time.Second))
	z.Error("lease keepalive failed", zap.Error(context.DeadlineExceeded))
	z.Info("info becomes debug")
	z.Debug("debug becomes trace: dropped")
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	require.Contains(t, lines[0], "[DEBUG] app: retrying of unary invoker failed: target=etcd-endpoints://x attempt=2 backoff=1s logger=retry")
	require.Contains(t, lines[1], "[ERROR] app: lease keepalive failed: target=etcd-endpoints://x error=\"context deadline exceeded\"")
	require.Contains(t, lines[2], "[DEBUG] app: info becomes debug")
	require.NotContains(t, out, "dropped")
	require.NotContains(t, out, `{"level"`, "no zap JSON")

	quiet, qbuf := testLogger(hclog.Info)
	newZapLogger(quiet).Warn("a retry")
	require.Empty(t, qbuf.String(), "the client's warnings are debug: silent at the default info level")
}

// TestClientLogsThroughHCLog runs a real etcd client against an address
// where nothing listens, so the client logs its failed attempts, and
// checks they arrive in the registry's hclog logger (named "etcd"), not
// as zap JSON on stderr.
func TestClientLogsThroughHCLog(t *testing.T) {
	log, buf := testLogger(hclog.Trace)
	r, err := New(Config{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: "200ms", Logger: log})
	require.NoError(t, err)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = r.Resolve(ctx, "svc")
	require.Error(t, err, "nothing listens on 127.0.0.1:1")
	require.Eventually(t, func() bool { return strings.Contains(buf.String(), "app.etcd:") },
		5*time.Second, 20*time.Millisecond, "the etcd client logged nothing through hclog: %q", buf.String())
	require.NotContains(t, buf.String(), `{"level"`)
}
