package polyglot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"

	// The compiled-in codec and balancer the stack's server and clients use.
	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
)

// hclString quotes s for kite.hcl.
func hclString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", "$${").Replace(s) + `"`
}

// pluginBlock declares a Python plugin in kite.hcl as a user would: the
// interpreter and the script in command, the interpreter's sum in
// sha256, the script's and the SDK's in files.
func pluginBlock(t testing.TB, kind spi.Kind, name, script string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "plugin %q %q {\n", kind, name)
	fmt.Fprintf(&b, "  command = [%s, %s]\n", hclString(python), hclString(script))
	fmt.Fprintf(&b, "  sha256  = %q\n", sha256File(t, python))
	b.WriteString("  files = {\n")
	for _, f := range append([]string{script}, sdkFiles(t)...) {
		fmt.Fprintf(&b, "    %s = %q\n", hclString(f), sha256File(t, f))
	}
	b.WriteString("  }\n  env = { PYTHONDONTWRITEBYTECODE = \"1\" }\n}\n")
	return b.String()
}

func writeHCL(t testing.TB, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kite.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type Greeter struct{}

type Hello struct {
	Name string `json:"name"`
}

// Greet answers with the x-tenant header the server-side filter let
// through, so the test sees what reached the handler.
func (Greeter) Greet(ctx context.Context, h *Hello) (*Hello, error) {
	tenant := ""
	if call := core.CallFromContext(ctx); call != nil && call.Meta != nil {
		tenant = call.Meta.Get("x-tenant")
	}
	return &Hello{Name: "hello " + h.Name + " (tenant " + tenant + ")"}, nil
}

// registryFile reads the jsonfile registry's file: service -> addrs.
func registryFile(t testing.TB, path string) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string][]struct {
			Addr string `json:"addr"`
		} `json:"services"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("registry file: %v\n%s", err, raw)
	}
	out := map[string][]string{}
	for svc, ins := range doc.Services {
		for _, in := range ins {
			out[svc] = append(out[svc], in.Addr)
		}
	}
	return out
}

// TestPythonPluginsInAStack assembles a server and clients from one
// kite.hcl whose registry and filters are the Python plugins: the server
// registers in the JSON file through the Python registry, the client
// finds it by watching that registry, and every call crosses the Python
// filter on both sides (the client side adds the header, the server side
// requires it and counts calls).
func TestPythonPluginsInAStack(t *testing.T) {
	needPython(t)
	regFile := filepath.Join(t.TempDir(), "registry.json")
	path := writeHCL(t, pluginBlock(t, spi.KindRegistry, "jsonfile", example(t, "json_registry.py"))+
		pluginBlock(t, spi.KindFilter, "header", example(t, "header_filter.py"))+`
registry "jsonfile" "main" {
  file          = `+hclString(regFile)+`
  poll_interval = "50ms"
}
filter "header" "server_tenant" {
  header        = "x-tenant"
  value         = "blue"
  count_trailer = "x-server-calls"
}
filter "header" "client_tenant" {
  header        = "x-tenant"
  value         = "blue"
  count_trailer = "x-client-calls"
}
server "greeter" {
  listen   = "127.0.0.1:0"
  registry = "main"
  filters  = ["server_tenant"]
}
client "greeter" {
  registry = "main"
  timeout  = "5s"
  filters  = ["client_tenant"]
}
client "stranger" {
  service  = "greeter"
  registry = "main"
  timeout  = "5s"
}
`)
	st, err := stack.Load(path, stack.WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	running := func() int {
		pids := 0
		for _, p := range st.Plugins() {
			if p.Pid != 0 {
				pids++
			}
		}
		return pids
	}
	// Plugins start when a block that is built uses them: none yet.
	if n := running(); n != 0 {
		t.Fatalf("plugins = %+v, want none running before anything is built", st.Plugins())
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	ready := make(chan spi.Instance, 1)
	done := make(chan error, 1)
	go func() {
		done <- st.ServeNotify(ctx, "greeter",
			func(s *core.Server) error { return s.Register("Greeter", Greeter{}) },
			func(in spi.Instance) { ready <- in })
	}()
	var self spi.Instance
	select {
	case self = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("server not ready after 20s")
	}
	// The server built its registry and filter: both plugins run.
	if n := running(); n != 2 {
		t.Fatalf("plugins = %+v, want the two Python plugins running", st.Plugins())
	}
	// Registered through the Python plugin: it is in the file.
	if got := registryFile(t, regFile)["greeter"]; len(got) != 1 || got[0] != self.Addr {
		t.Fatalf("registry file lists greeter at %v, want [%s]", got, self.Addr)
	}

	c, err := st.Client("greeter")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var out Hello
		call := &spi.Call{Side: spi.ClientSide, Method: "Greeter.Greet", Request: &Hello{Name: "kite"}, Response: &out,
			Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
		err := c.Invoke(cctx, call)
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if out.Name != "hello kite (tenant blue)" {
			t.Fatalf("call %d answered %q: the client-side filter's header did not reach the handler", i, out.Name)
		}
		// Both sides counted the call; the server's count crossed the wire
		// in the trailer, the client's was added on the way back.
		for _, k := range []string{"x-server-calls", "x-client-calls"} {
			if got := call.Trailer.Get(k); got != strconv.Itoa(i) {
				t.Fatalf("call %d: trailer %s = %q, want %d (trailer %v)", i, k, got, i, call.Trailer)
			}
		}
	}

	// A client without the filter sends no header: the server's Python
	// filter refuses the call before the handler.
	stranger, err := st.Client("stranger")
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = stranger.Call(cctx, "Greeter.Greet", &Hello{Name: "eve"}, &Hello{})
	cancel()
	if spi.CodeOf(err) != spi.Unauthenticated || !strings.Contains(err.Error(), "missing x-tenant header") {
		t.Fatalf("call without the header: got %v, want Unauthenticated: missing x-tenant header", err)
	}

	// kill -9 of the filter plugin, which both sides' filters run in:
	// calls fail closed with Unavailable naming it, then work again once
	// the supervisor has restarted it (its counts start afresh).
	filterPid := func() int {
		for _, p := range st.Plugins() {
			if p.Kind == spi.KindFilter && p.Name == "header" {
				return p.Pid
			}
		}
		return 0
	}
	pid := filterPid()
	if pid == 0 {
		t.Fatal("no pid for the header filter plugin")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	err = c.Call(cctx, "Greeter.Greet", &Hello{Name: "kite"}, &Hello{})
	cancel()
	if spi.CodeOf(err) != spi.Unavailable || !strings.Contains(err.Error(), "plugin filter/header") {
		t.Fatalf("call after kill -9 of the filter plugin: %v, want Unavailable naming plugin filter/header", err)
	}
	waitFor(t, restartBound, "the filter plugin restarted", func() bool {
		p := filterPid()
		return p != 0 && p != pid
	})
	call := &spi.Call{Side: spi.ClientSide, Method: "Greeter.Greet", Request: &Hello{Name: "again"}, Response: &Hello{},
		Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
	cctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	err = c.Invoke(cctx, call)
	cancel()
	if err != nil || call.Trailer.Get("x-server-calls") != "1" {
		t.Fatalf("call after the restart: %v (trailer %v)", err, call.Trailer)
	}

	// Stopping the server deregisters it through the Python registry.
	stop()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if got := registryFile(t, regFile)["greeter"]; len(got) != 0 {
		t.Fatalf("after the server stopped the registry file still lists greeter at %v", got)
	}
}

// TestPythonRegistryFollowsFileEdits edits the registry file by hand, as
// an operator would: a watch through the bridge sees the change.
func TestPythonRegistryFollowsFileEdits(t *testing.T) {
	e, _ := load(t, pyDecl(t, spi.KindRegistry, "jsonfile", example(t, "json_registry.py")))
	file := filepath.Join(t.TempDir(), "registry.json")
	reg := build[spi.Registry](t, e, fmt.Sprintf(`{"file":%q,"poll_interval":"20ms"}`, file))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := reg.Watch(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ins, err := w.Next(ctx); err != nil || len(ins) != 0 {
		t.Fatalf("first snapshot = %v, %v; want empty", ins, err)
	}
	edit := `{"services": {"orders": [{"addr": "127.0.0.1:7001", "weight": 30, "tags": ["hand"]}]}}`
	tmp := file + ".edit"
	if err := os.WriteFile(tmp, []byte(edit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	ins, err := w.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].Service != "orders" || ins[0].Addr != "127.0.0.1:7001" || ins[0].Weight != 30 || len(ins[0].Tags) != 1 {
		t.Fatalf("after the edit the watch saw %+v", ins)
	}
	// A broken edit keeps the last good state (and no spurious snapshot).
	if err := os.WriteFile(file, []byte(`{"services": {`), 0o644); err != nil {
		t.Fatal(err)
	}
	qctx, qcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer qcancel()
	if ins, err := w.Next(qctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after a broken edit: %v, %v; want no snapshot", ins, err)
	}
	got, err := reg.Resolve(ctx, "orders")
	if err != nil || len(got) != 1 {
		t.Fatalf("resolve after a broken edit: %v, %v; want the last good instance", got, err)
	}
}
