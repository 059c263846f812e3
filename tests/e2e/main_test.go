package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/spi"

	// The standard plugins the servers and the client are assembled from,
	// compiled in and found through spi.Default like kite.hcl would.
	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
	_ "github.com/kiterpc/kite/plugins/registry-etcd"
	_ "github.com/kiterpc/kite/plugins/registry-zk"
)

// serverEnv makes the test binary act as a Kite server process; see
// runServer.
const serverEnv = "KITE_E2E_SERVER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(serverEnv); spec != "" {
		os.Exit(runServer(spec))
	}
	goleak.VerifyTestMain(m)
}

// serverSpec describes a server process: its name (which it answers
// with), the registry it registers in and the instance's weight.
type serverSpec struct {
	Name     string
	Service  string
	Registry string          // catalog name: "zk", "etcd"
	Config   json.RawMessage // the registry's kite.hcl block as JSON
	Weight   int
}

// WhoReq and WhoResp are the messages of the test service.
type WhoReq struct {
	Seq int `json:"seq"`
}
type WhoResp struct {
	Server string `json:"server"`
	Seq    int    `json:"seq"`
}

// who answers with the name of the server process it runs in.
type who struct{ name string }

func (w *who) Who(_ context.Context, r *WhoReq) (*WhoResp, error) {
	return &WhoResp{Server: w.name, Seq: r.Seq}, nil
}

// runServer is the main of a server process: serve, register once ready,
// print "ready <addr>", and on stdin's end deregister first, then drain.
func runServer(raw string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "e2e server:", err)
		return 2
	}
	var spec serverSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return fail(err)
	}
	srv, err := core.NewServer(core.ServerOptions{Logger: hclog.NewNullLogger()})
	if err != nil {
		return fail(err)
	}
	if err := srv.Register("Echo", &who{name: spec.Name}); err != nil {
		return fail(err)
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		return fail(err)
	}
	reg, err := spi.Default.BuildRegistry(spec.Registry, spi.Config(spec.Config))
	if err != nil {
		return fail(err)
	}
	in := spi.Instance{Service: spec.Service, Addr: ln.Addr().String(), Weight: spec.Weight}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := reg.Register(ctx, in); err != nil {
		return fail(fmt.Errorf("register: %w", err))
	}
	fmt.Printf("ready %s\n", in.Addr)
	_, _ = io.Copy(io.Discard, os.Stdin)

	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code := 0
	if err := reg.Deregister(ctx, in); err != nil {
		fmt.Fprintln(os.Stderr, "e2e server: deregister:", err)
		code = 1
	}
	_ = reg.Close()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e server: shutdown:", err)
		code = 1
	}
	return code
}

// serverProc is a running server process.
type serverProc struct {
	*testkit.Proc
	spec serverSpec
	addr string
}

// startServer runs a server process and waits until it has registered.
// When the test ends it is stopped gracefully (deregister, drain), or
// killed if it does not end within 15s.
func startServer(t *testing.T, spec serverSpec) *serverProc {
	t.Helper()
	raw, err := json.Marshal(spec)
	require.NoError(t, err)
	p := &serverProc{Proc: testkit.StartSelf(t, 15*time.Second, serverEnv+"="+string(raw)), spec: spec}
	l, ok := p.FirstLine(30 * time.Second)
	if !ok {
		t.Fatalf("server %s did not register within 30s", spec.Name)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(l), "ready ")
	require.True(t, ok, "server %s did not start: %q", spec.Name, l)
	p.addr = addr
	return p
}
