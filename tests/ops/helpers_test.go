package ops

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"

	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/filter-metrics"
	_ "github.com/kiterpc/kite/plugins/lb-hash"
	_ "github.com/kiterpc/kite/plugins/lb-roundrobin"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
	_ "github.com/kiterpc/kite/plugins/registry-local"
)

// roleEnv makes the test binary act as a server or client process of the
// signal tests instead of running tests (see procs_test.go).
const roleEnv = "KITE_OPS_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	flag.Parse()
	// Linking cmd/kite takes seconds; build it while the other tests run.
	var tmp string
	if !testing.Short() {
		var err error
		if tmp, err = os.MkdirTemp("", "kite-ops-"); err == nil {
			kiteBin = startBuild(filepath.Join(tmp, "kite"), "github.com/kiterpc/kite/cmd/kite")
		}
	}
	code := m.Run()
	if kiteBin != nil {
		<-kiteBin.done
		_ = os.RemoveAll(tmp)
	}
	// spawnLoop is spi/plugin's process-lifetime thread, started when
	// core/stack is linked.
	if err := goleak.Find(goleak.IgnoreTopFunction("github.com/kiterpc/kite/spi/plugin.spawnLoop")); err != nil && code == 0 {
		fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

var quiet = hclog.NewNullLogger()

type EchoReq struct {
	Text string `json:"text"`
}

type EchoResp struct {
	Text   string `json:"text"`
	Server string `json:"server"`
}

// echo is the service under test. Hold, when set, blocks Slow until it
// is closed, so a test can keep a call in flight.
type echo struct {
	name    string
	hold    chan struct{}
	entered chan struct{}
}

func (e *echo) Echo(_ context.Context, r *EchoReq) (*EchoResp, error) {
	return &EchoResp{Text: r.Text, Server: e.name}, nil
}

func (e *echo) Fail(_ context.Context, r *EchoReq) (*EchoResp, error) {
	return nil, spi.Errorf(spi.NotFound, "no %s", r.Text)
}

func (e *echo) Slow(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	if e.entered != nil {
		e.entered <- struct{}{}
	}
	select {
	case <-e.hold:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &EchoResp{Text: r.Text, Server: e.name}, nil
}

func writeFile(t *testing.T, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(src), 0o644))
	return p
}

// served is a stack serving one server block in this process.
type served struct {
	st     *stack.Stack
	in     spi.Instance
	cancel context.CancelFunc
	done   chan error
}

// serve loads path and serves block name with svc until the test ends.
func serve(t *testing.T, path, name string, svc *echo, opts ...stack.Option) *served {
	t.Helper()
	opts = append([]stack.Option{stack.WithLogger(quiet)}, opts...)
	st, err := stack.Load(path, opts...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{st: st, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan spi.Instance, 1)
	go func() {
		s.done <- st.ServeNotify(ctx, name, func(srv *core.Server) error { return srv.Register("Echo", svc) },
			func(in spi.Instance) { ready <- in })
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-s.done
		}
		assert.NoError(t, st.Close())
	})
	select {
	case s.in = <-ready:
	case err := <-s.done:
		stopped = true
		t.Fatalf("serve %s: %v", name, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("server %s not ready after 10s", name)
	}
	return s
}

var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := httpClient.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// artifactDir is where screenshots go: $KITE_ARTIFACTS, else a directory
// of the test's own (removed with it).
func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("KITE_ARTIFACTS"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.TempDir()
}

func hcl(src string, kv ...string) string {
	r := strings.NewReplacer(kv...)
	return r.Replace(src)
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
