package logfilter

import (
	"bytes"
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLogsCallsWithCodeAndLevel(t *testing.T) {
	var buf bytes.Buffer
	f := &Filter{Logger: hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info}), Level: hclog.Debug}
	okInv := f.Wrap(func(ctx context.Context, c *spi.Call) error { return nil })
	require.NoError(t, okInv(context.Background(), &spi.Call{Method: "Svc.Ok", Side: spi.ClientSide}))
	require.Empty(t, buf.String(), "successful calls log at debug, below the logger's info level")

	failInv := f.Wrap(func(ctx context.Context, c *spi.Call) error { return spi.Errorf(spi.NotFound, "no user 7") })
	err := failInv(context.Background(), &spi.Call{Method: "Svc.Get", Side: spi.ServerSide, Peer: "127.0.0.1:5"})
	require.ErrorIs(t, err, spi.ErrNotFound)
	out := buf.String()
	require.Contains(t, out, "[WARN]")
	require.Contains(t, out, "method=Svc.Get")
	require.Contains(t, out, "code=NotFound")
	require.Contains(t, out, "side=server")
}

func TestConfig(t *testing.T) {
	v, err := spi.Default.Build(spi.KindFilter, "log", spi.Config(`{"level":"info","slow":"250ms"}`))
	require.NoError(t, err)
	f := v.(*Filter)
	require.Equal(t, hclog.Info, f.Level)
	_, err = spi.Default.Build(spi.KindFilter, "log", spi.Config(`{"level":"loud"}`))
	require.ErrorContains(t, err, "loud")
	_, err = spi.Default.Build(spi.KindFilter, "log", spi.Config(`{"slow":"fast"}`))
	require.Error(t, err)
}

func TestTraceIDOnTheLine(t *testing.T) {
	var buf bytes.Buffer
	f := &Filter{Logger: hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Debug}), Level: hclog.Debug}
	md := &spi.Metadata{}
	md.Set(spi.MetaTraceParent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	inv := f.Wrap(func(ctx context.Context, c *spi.Call) error { return nil })
	require.NoError(t, inv(context.Background(), &spi.Call{Method: "Svc.M", Side: spi.ServerSide, Meta: md}))
	require.Contains(t, buf.String(), "trace_id=4bf92f3577b34da6a3ce929d0e0e4736")
	require.Equal(t, "", traceID("garbage"))
}
