package observability

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	_ "github.com/kiterpc/kite/plugins/codec-json"
	authfilter "github.com/kiterpc/kite/plugins/filter-auth"
)

func principal(ctx context.Context) string {
	p, _ := authfilter.PrincipalFrom(ctx)
	return p
}

func TestMain(m *testing.M) {
	// spawnLoop is spi/plugin's process-lifetime thread, started when
	// core/stack is linked.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/kiterpc/kite/spi/plugin.spawnLoop"))
}

var quiet = hclog.NewNullLogger()

type EchoReq struct {
	Text string `json:"text"`
}

type EchoResp struct {
	Text      string `json:"text"`
	Principal string `json:"principal,omitempty"`
}

// echo is the service under test. Spans records the span context each
// handler ran under; Relay calls Echo.Echo through relay, a client of the
// same server, so a trace can be followed through two hops.
type echo struct {
	spans chan trace.SpanContext
	relay *core.Client
}

func newEcho() *echo { return &echo{spans: make(chan trace.SpanContext, 64)} }

func (e *echo) Echo(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	e.spans <- trace.SpanContextFromContext(ctx)
	return &EchoResp{Text: r.Text, Principal: principal(ctx)}, nil
}

// Ping answers without recording a span (a health check).
func (e *echo) Ping(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	return &EchoResp{Text: "pong", Principal: principal(ctx)}, nil
}

func (e *echo) Fail(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	e.spans <- trace.SpanContextFromContext(ctx)
	return nil, spi.Errorf(spi.NotFound, "no %s", r.Text)
}

func (e *echo) Relay(ctx context.Context, r *EchoReq) (*EchoResp, error) {
	e.spans <- trace.SpanContextFromContext(ctx)
	var out EchoResp
	if err := e.relay.Call(ctx, "Echo.Echo", r, &out); err != nil {
		return nil, err
	}
	out.Text = "relayed " + out.Text
	return &out, nil
}

// start serves svc on a loopback port with filters.
func start(t *testing.T, svc *echo, filters ...spi.Filter) string {
	t.Helper()
	srv, err := core.NewServer(core.ServerOptions{Filters: filters, Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, srv.Register("Echo", svc))
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func dial(t *testing.T, addr string, filters ...spi.Filter) *core.Client {
	t.Helper()
	c, err := core.NewClient(core.ClientOptions{Targets: []string{addr}, Filters: filters, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
