package recoverfilter

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPanicBecomesInternal(t *testing.T) {
	var buf bytes.Buffer
	f := &Filter{Logger: hclog.New(&hclog.LoggerOptions{Output: &buf}), Stack: true}
	inv := f.Wrap(func(ctx context.Context, c *spi.Call) error { panic("kaboom") })
	err := inv(context.Background(), &spi.Call{Method: "Svc.M", Side: spi.ServerSide})
	require.ErrorIs(t, err, spi.ErrInternal)
	// The value may be a secret: it stays in the server's log, tied to
	// the caller's error by the incident id (issue 20 item 5).
	require.NotContains(t, err.Error(), "kaboom")
	_, id, found := strings.Cut(err.Error(), "incident ")
	require.True(t, found, "%v", err)
	require.Contains(t, buf.String(), "incident="+id[:16])
	require.Contains(t, buf.String(), "panic=kaboom")
	require.Contains(t, buf.String(), "recovered from panic")
	require.Contains(t, buf.String(), "recover_test.go") // the stack points at the panic

	// On a client the error never leaves the process: it keeps the value.
	err = inv(context.Background(), &spi.Call{Method: "Svc.M", Side: spi.ClientSide})
	require.ErrorIs(t, err, spi.ErrInternal)
	require.Contains(t, err.Error(), "kaboom")

	ok := f.Wrap(func(ctx context.Context, c *spi.Call) error { return spi.ErrNotFound })
	require.ErrorIs(t, ok(context.Background(), &spi.Call{}), spi.ErrNotFound)
}

func TestCatalogEntry(t *testing.T) {
	v, err := spi.Default.Build(spi.KindFilter, "recover", spi.Config(`{"stack":false}`))
	require.NoError(t, err)
	require.False(t, v.(*Filter).Stack)
	_, err = spi.Default.Build(spi.KindFilter, "recover", spi.Config(`{"nope":1}`))
	require.Error(t, err)
}
