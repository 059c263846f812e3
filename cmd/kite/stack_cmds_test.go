package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"
)

// The tests below run the built kite binary against a real server
// started here, through a real registry.

type echoReq struct {
	Text string `json:"text"`
}

type echoResp struct {
	Text   string `json:"text"`
	Server string `json:"server"`
}

type echoSvc struct{ name string }

func (e *echoSvc) Echo(_ context.Context, r *echoReq) (*echoResp, error) {
	return &echoResp{Text: r.Text, Server: e.name}, nil
}

func (e *echoSvc) Fail(_ context.Context, r *echoReq) (*echoResp, error) {
	return nil, spi.Errorf(spi.NotFound, "no %s", r.Text)
}

const cliStack = `
registry "local" "main" {
  dir           = "{{DIR}}/registry"
  poll_interval = "10ms"
}

server "echo" {
  listen   = "127.0.0.1:0"
  registry = "main"
  version  = "v7"
  zone     = "z1"
  metadata = { team = "kite" }
}

client "echo" {
  registry = "main"
  timeout  = "2s"
}
`

// startServer loads path in this process and serves its "echo" block
// with the echo service until the test ends.
func startServer(t *testing.T, path string) spi.Instance {
	t.Helper()
	st, err := stack.Load(path, stack.WithLogger(hclog.NewNullLogger()))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan spi.Instance, 1)
	done := make(chan error, 1)
	go func() {
		done <- st.ServeNotify(ctx, "echo", func(s *core.Server) error { return s.Register("Echo", &echoSvc{name: "in-test"}) },
			func(in spi.Instance) { ready <- in })
	}()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
		assert.NoError(t, st.Close())
	})
	select {
	case in := <-ready:
		return in
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server not ready after 10s")
	}
	return spi.Instance{}
}

func cliSetup(t *testing.T) (dir, path string, in spi.Instance) {
	t.Helper()
	dir = t.TempDir()
	path = writeFile(t, dir, "kite.hcl", strings.ReplaceAll(cliStack, "{{DIR}}", dir))
	return dir, path, startServer(t, path)
}

func TestCallPrintsTheJSONResponse(t *testing.T) {
	dir, path, _ := cliSetup(t)
	r := kite(t, dir, nil, "call", "-f", path, "echo", "Echo.Echo", `{"text": "hello"}`)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "{\n  \"text\": \"hello\",\n  \"server\": \"in-test\"\n}\n", r.stdout)

	// Flags after the arguments, request from a file, compact output.
	writeFile(t, dir, "req.json", `{"text": "from file"}`)
	r = kite(t, dir, nil, "call", "echo", "Echo.Echo", "@req.json", "-f", path, "-compact")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, `{"text":"from file","server":"in-test"}`+"\n", r.stdout)

	// KITE_CONFIG stands in for -f; the request defaults to {}.
	r = kite(t, dir, []string{"KITE_CONFIG=" + path}, "call", "echo", "Echo.Echo", "-compact")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, `{"text":"","server":"in-test"}`+"\n", r.stdout)
}

func TestCallErrorsAndUsage(t *testing.T) {
	dir, path, _ := cliSetup(t)
	r := kite(t, dir, nil, "call", "-f", path, "echo", "Echo.Fail", `{"text": "thing"}`)
	assert.Equal(t, 1, r.code)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "kite call: NotFound: no thing\n", r.stderr)

	r = kite(t, dir, nil, "call", "-f", path, "echo", "Echo.Nope", `{}`)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "kite call: Unimplemented: ")

	r = kite(t, dir, nil, "call", "-f", path, "nosuch", "Echo.Echo")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, `no client block named "nosuch"`)

	for _, args := range [][]string{
		{"call"},
		{"call", "-f", path, "echo"},
		{"call", "-f", path, "echo", "Echo", "{}"},
		{"call", "-f", path, "echo", "Echo.Echo", "{not json"},
		{"call", "-nosuchflag", "echo", "Echo.Echo"},
	} {
		r = kite(t, dir, nil, args...)
		assert.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
	}

	r = kite(t, dir, nil, "call", "--help")
	assert.Equal(t, 0, r.code)
	assert.True(t, strings.HasPrefix(r.stdout, "Usage: kite call"), r.stdout)
	assert.Empty(t, r.stderr)

	// A broken file: exit 1 with the position.
	bad := writeFile(t, dir, "bad.hcl", "client \"echo\" {\n  timout = \"1s\"\n}\n")
	r = kite(t, dir, nil, "call", "-f", bad, "echo", "Echo.Echo")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, bad+":2:3: error: Unsupported argument")
}

// TestCallWithTheRepoKiteHCL serves and calls the repository's demo
// kite.hcl (recover and log filters, weighted balancer, retry, pool),
// with only the port changed to a free one and the local registry in a
// temporary directory.
func TestCallWithTheRepoKiteHCL(t *testing.T) {
	src, err := os.ReadFile("../../kite.hcl")
	require.NoError(t, err)
	require.Contains(t, string(src), `listen   = "127.0.0.1:9000"`)
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", dir) // the local registry's default directory
	path := writeFile(t, dir, "kite.hcl", strings.Replace(string(src), `"127.0.0.1:9000"`, `"127.0.0.1:0"`, 1))
	in := startServer(t, path)

	r := kite(t, dir, nil, "call", "-f", path, "-compact", "echo", "Echo.Echo", `{"text": "demo"}`)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, `{"text":"demo","server":"in-test"}`+"\n", r.stdout)

	r = kite(t, dir, nil, "registry", "ls", "-f", path)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `registry "local" (local)`)
	assert.Regexp(t, `echo\s+`+regexp.QuoteMeta(in.Addr)+`\s+100\s`, r.stdout)

	r = kite(t, dir, nil, "plugins", "-f", path)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `(?m)^filter\s+recover\s+1\.0\.0\s+builtin\s+-$`, r.stdout)
	assert.Regexp(t, `(?m)^balancer\s+weighted\s+\S+\s+builtin\s+-$`, r.stdout)
}

func TestRegistryLs(t *testing.T) {
	dir, path, in := cliSetup(t)
	r := kite(t, dir, nil, "registry", "ls", "-f", path)
	require.Equal(t, 0, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 3, r.stdout)
	assert.Equal(t, `registry "main" (local)`, lines[0])
	assert.Regexp(t, `^SERVICE\s+ADDR\s+WEIGHT\s+VERSION\s+ZONE\s+TAGS\s+METADATA$`, lines[1])
	assert.Regexp(t, `^echo\s+`+regexp.QuoteMeta(in.Addr)+`\s+100\s+v7\s+z1\s+-\s+team="kite"$`, lines[2])

	// Explicit registry label and services, one of them unknown; JSON.
	r = kite(t, dir, nil, "registry", "ls", "-f", path, "-json", "main", "echo", "ghost")
	require.Equal(t, 0, r.code, r.stderr)
	var out struct {
		Registry string `json:"registry"`
		Impl     string `json:"impl"`
		Services []struct {
			Service   string         `json:"service"`
			Instances []spi.Instance `json:"instances"`
		} `json:"services"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	assert.Equal(t, "main", out.Registry)
	assert.Equal(t, "local", out.Impl)
	require.Len(t, out.Services, 2)
	require.Len(t, out.Services[0].Instances, 1)
	assert.Equal(t, in.Addr, out.Services[0].Instances[0].Addr)
	assert.Equal(t, "ghost", out.Services[1].Service)
	assert.Empty(t, out.Services[1].Instances)

	r = kite(t, dir, nil, "registry", "ls", "-f", path, "ghost")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `ghost\s+\(no instances\)`, r.stdout)

	r = kite(t, dir, nil, "registry", "rm", "-f", path)
	assert.Equal(t, 2, r.code)
	r = kite(t, dir, nil, "registry")
	assert.Equal(t, 2, r.code)
	r = kite(t, dir, nil, "registry", "ls", "--help")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "Usage: kite registry ls")
}

func TestBench(t *testing.T) {
	dir, path, _ := cliSetup(t)
	r := kite(t, dir, nil, "bench", "-f", path, "echo", "Echo.Echo", `{"text":"x"}`, "-c", "4", "-d", "1200ms", "-json")
	require.Equal(t, 0, r.code, r.stderr)
	var rep struct {
		Concurrency int                `json:"concurrency"`
		DurationS   float64            `json:"duration_s"`
		Calls       int64              `json:"calls"`
		OK          int64              `json:"ok"`
		QPS         float64            `json:"qps"`
		Errors      map[string]int64   `json:"errors"`
		LatencyUS   map[string]float64 `json:"latency_us"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	assert.Equal(t, 4, rep.Concurrency)
	assert.InDelta(t, 1.2, rep.DurationS, 0.5)
	assert.Greater(t, rep.Calls, int64(100))
	assert.Empty(t, rep.Errors)
	assert.Greater(t, rep.QPS, 0.0)
	for _, k := range []string{"p50", "p90", "p99", "p99.9"} {
		assert.Greater(t, rep.LatencyUS[k], 0.0, k)
	}
	assert.LessOrEqual(t, rep.LatencyUS["p50"], rep.LatencyUS["p99"])
	// Progress: a line per 500 ms on stderr (not a terminal here).
	progress := regexp.MustCompile(`(?m)^\s+\d+\.\ds\s+\d+ calls\s+\d+ qps \(now\s+\d+\)\s+0 errors$`).FindAllString(r.stderr, -1)
	assert.GreaterOrEqual(t, len(progress), 2, r.stderr)
	t.Logf("kite bench -c 4 -d 1.2s (race-built server in the test process): %.0f qps, p50 %.0fµs, p99 %.0fµs",
		rep.QPS, rep.LatencyUS["p50"], rep.LatencyUS["p99"])

	r = kite(t, dir, nil, "bench", "-f", path, "-q", "-n", "300", "-c", "3", "echo", "Echo.Echo")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "calls    300 (ok 300, errors 0)")
	assert.Regexp(t, `latency  p50 \S+  p90 \S+  p99 \S+  p99.9 \S+`, r.stdout)
	assert.Empty(t, r.stderr)

	r = kite(t, dir, nil, "bench", "-f", path, "-n", "10", "echo", "Echo.Fail", `{"text":"x"}`)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "kite bench: warm-up call failed: NotFound: no x")

	r = kite(t, dir, nil, "bench", "-f", path, "-c", "0", "echo", "Echo.Echo")
	assert.Equal(t, 2, r.code)
	r = kite(t, dir, nil, "bench", "--help")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "Usage: kite bench")
}

func TestPluginsExternal(t *testing.T) {
	dir := t.TempDir()
	r := kite(t, dir, nil, "plugins")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `(?m)^KIND\s+NAME\s+VERSION\s+SOURCE\s+SHA256$`, r.stdout)
	assert.Regexp(t, `(?m)^registry\s+zk\s+\S+\s+builtin\s+-$`, r.stdout)

	bin := filepath.Join(dir, "kite-registry-local")
	out, err := exec.Command("go", "build", "-o", bin, "../../plugins/registry-local/cmd/kite-registry-local").CombinedOutput()
	require.NoError(t, err, "%s", out)
	raw, err := os.ReadFile(bin)
	require.NoError(t, err)
	sum := sha256.Sum256(raw)
	hexSum := hex.EncodeToString(sum[:])
	path := writeFile(t, dir, "kite.hcl", fmt.Sprintf(`
plugin "registry" "local" {
  path   = "./kite-registry-local"
  sha256 = %q
}
`, hexSum))
	r = kite(t, dir, nil, "plugins", "-f", path)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `(?m)^registry\s+local\s+1\.0\.0\s+`+regexp.QuoteMeta(bin)+`\s+`+hexSum+`$`, r.stdout)

	r = kite(t, dir, nil, "plugins", "-f", path, "-json")
	require.Equal(t, 0, r.code, r.stderr)
	var rows []pluginRow
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rows))
	found := false
	for _, row := range rows {
		if row.Kind == spi.KindRegistry && row.Name == "local" {
			found = true
			assert.Equal(t, bin, row.Source)
			assert.Equal(t, hexSum, row.SHA256)
		}
	}
	assert.True(t, found)

	wrong := writeFile(t, dir, "wrong.hcl", fmt.Sprintf(`
plugin "registry" "local" {
  path   = "./kite-registry-local"
  sha256 = %q
}
`, strings.Repeat("ab", 32)))
	r = kite(t, dir, nil, "plugins", "-f", wrong)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, wrong+":4:12: loading registry plugin \"local\"", "points at the sha256 attribute")
	assert.Contains(t, r.stderr, "refusing to start "+bin)
}
