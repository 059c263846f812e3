package walkthrough

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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

	// What examples/echo (the page's server) and kite link that the
	// kite.hcl uses: the default codec and balancer, the recover filter.
	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/filter-recover"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/kiterpc/kite/spi/plugin.spawnLoop"))
}

// root is the repository root, relative to this package's directory.
const root = "../.."

// files extracts the walkthrough's files: each fenced block announced by
// a `<!-- walkthrough: NAME -->` line.
func files(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, "docs", "PLUGINS.md"))
	require.NoError(t, err)
	doc := string(src)
	start := strings.Index(doc, "## Write your first plugin in 10 minutes\n")
	require.GreaterOrEqual(t, start, 0, "docs/PLUGINS.md lost its walkthrough heading")
	doc = doc[start:]
	if end := strings.Index(doc[3:], "\n## "); end >= 0 {
		doc = doc[:end+3]
	}
	re := regexp.MustCompile("(?s)<!-- walkthrough: (\\S+) -->\n```[a-z]*\n(.*?)```")
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(doc, -1) {
		out[m[1]] = m[2]
	}
	for _, name := range []string{"go.mod", "main.go", "kite.hcl"} {
		require.Contains(t, out, name, "the walkthrough has no %s block", name)
	}
	return out
}

// replaceOnce replaces old, which must occur in s, by new.
func replaceOnce(t *testing.T, s, old, new, what string) string {
	t.Helper()
	require.Contains(t, s, old, "the walkthrough's %s changed: update this test", what)
	return strings.ReplaceAll(s, old, new)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	require.NoError(t, l.Close())
	return port
}

type sayRequest struct {
	Text string `json:"text"`
}

type sayReply struct {
	Text   string `json:"text"`
	Server string `json:"server"`
}

// echo stands in for examples/echo's Echo service.
type echo struct{ addr string }

func (e *echo) Say(ctx context.Context, r *sayRequest) (*sayReply, error) {
	return &sayReply{Text: r.Text, Server: e.addr}, nil
}

func TestWriteYourFirstPlugin(t *testing.T) {
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the walkthrough builds with the go command")
	repo, err := filepath.Abs(root)
	require.NoError(t, err)
	fs := files(t)

	// Steps 1 and 2: a module outside the repository (t.TempDir is under
	// $TMPDIR), replace pointed at this checkout instead of ../kite.
	mod := t.TempDir()
	require.False(t, strings.HasPrefix(mod, repo+string(filepath.Separator)), "the module must live outside the repository")
	gomod := replaceOnce(t, fs["go.mod"], "=> ../kite", "=> "+repo, "replace line")
	require.NoError(t, os.WriteFile(filepath.Join(mod, "go.mod"), []byte(gomod), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(mod, "main.go"), []byte(fs["main.go"]), 0o644))
	// Step 3: the page runs `go mod tidy`; here -mod=mod resolves the
	// same requirements while building, with Kite's go.sum as the source
	// of checksums (what tidy would fetch), so no download is needed for
	// modules the checkout already uses.
	sums, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(mod, "go.sum"), sums, 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := filepath.Join(mod, "kite-filter-apikey")
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".")
	build.Dir = mod
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	t0 := time.Now()
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build in the walkthrough module:\n%s", out)
	t.Logf("plugin built in %v", time.Since(t0).Round(time.Millisecond))
	raw, err := os.ReadFile(bin)
	require.NoError(t, err)
	sum := sha256.Sum256(raw)

	// Step 4: the kite.hcl, with the real checksum and a free port.
	port := freePort(t)
	hcl := replaceOnce(t, fs["kite.hcl"], "<the sum sha256sum printed>", hex.EncodeToString(sum[:]), "sha256 placeholder")
	hcl = replaceOnce(t, hcl, "127.0.0.1:9300", "127.0.0.1:"+port, "port")
	path := filepath.Join(mod, "kite.hcl")
	require.NoError(t, os.WriteFile(path, []byte(hcl), 0o644))
	quiet := hclog.NewNullLogger()
	_, err = stack.Check(path, stack.WithLogger(quiet))
	require.NoError(t, err, "kite check of the walkthrough's kite.hcl")
	// The typo the page suggests trying is caught at the attribute.
	typo := filepath.Join(mod, "typo.hcl")
	require.NoError(t, os.WriteFile(typo, []byte(replaceOnce(t, hcl, "key = \"s3cret\"", "kee = \"s3cret\"", "filter block")), 0o644))
	_, err = stack.Check(typo, stack.WithLogger(quiet))
	require.Error(t, err)
	assert.Contains(t, err.Error(), typo+":")
	assert.Contains(t, err.Error(), `unsupported attribute "kee"`)

	// Step 5: serve the server block, call through the client block.
	st, err := stack.Load(path, stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	sctx, stop := context.WithCancel(context.Background())
	ready := make(chan spi.Instance, 1)
	done := make(chan error, 1)
	svc := &echo{}
	go func() {
		done <- st.ServeNotify(sctx, "echo",
			func(s *core.Server) error { return s.Register("Echo", svc) },
			func(in spi.Instance) { ready <- in })
	}()
	select {
	case in := <-ready:
		svc.addr = in.Addr
	case err := <-done:
		stop()
		t.Fatalf("serve: %v", err)
	case <-time.After(20 * time.Second):
		stop()
		t.Fatal("the echo server was not serving after 20 s")
	}
	defer func() {
		stop()
		require.NoError(t, <-done)
	}()
	c, err := st.Client("echo")
	require.NoError(t, err)

	// Without the key: refused by the plugin, before the handler.
	var r sayReply
	err = c.Call(context.Background(), "Echo.Say", &sayRequest{Text: "hi"}, &r)
	require.Error(t, err)
	assert.Equal(t, spi.Unauthenticated, spi.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), "Echo.Say: missing or wrong x-api-key")

	// With it (kite call -H x-api-key=s3cret): answered.
	call := &spi.Call{Side: spi.ClientSide, Method: "Echo.Say", Request: &sayRequest{Text: "hi"}, Response: &r,
		Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
	call.Meta.Set("x-api-key", "s3cret")
	require.NoError(t, c.Invoke(context.Background(), call))
	assert.Equal(t, "hi", r.Text)
	assert.Equal(t, "127.0.0.1:"+port, r.Server)
}
