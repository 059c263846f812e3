package static

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		r, err := New(Config{Group: "conformance"})
		require.NoError(t, err)
		return r
	})
	storesMu.Lock()
	defer storesMu.Unlock()
	assert.Empty(t, stores, "closing every registry frees its group")
}

func build(t *testing.T, cfg string) (*Registry, error) {
	t.Helper()
	v, err := spi.Default.Build(spi.KindRegistry, Name, spi.Config(cfg))
	if err != nil {
		return nil, err
	}
	r := v.(*Registry)
	t.Cleanup(func() { r.Close() })
	return r, nil
}

func TestConfiguredInstances(t *testing.T) {
	ctx := context.Background()
	// Weights arrive as strings from a map(string) attribute, or as numbers.
	r, err := build(t, `{"addrs":["127.0.0.1:9000","127.0.0.1:9001","unix:///run/kite.sock"],
		"weights":{"127.0.0.1:9001":"3","unix:///run/kite.sock":7}}`)
	require.NoError(t, err)

	for _, svc := range []string{"user", "order"} {
		got, err := r.Resolve(ctx, svc)
		require.NoError(t, err)
		assert.Equal(t, []spi.Instance{
			{Service: svc, Addr: "127.0.0.1:9000"},
			{Service: svc, Addr: "127.0.0.1:9001", Weight: 3},
			{Service: svc, Addr: "unix:///run/kite.sock", Weight: 7},
		}, got)
	}

	w, err := r.Watch(ctx, "user")
	require.NoError(t, err)
	defer w.Stop()
	got, err := w.Next(ctx)
	require.NoError(t, err)
	assert.Len(t, got, 3)
}

func TestServiceLimitsConfiguredInstances(t *testing.T) {
	ctx := context.Background()
	r, err := build(t, `{"service":"user","addrs":["10.0.0.1:9000"]}`)
	require.NoError(t, err)
	got, err := r.Resolve(ctx, "user")
	require.NoError(t, err)
	assert.Equal(t, []spi.Instance{{Service: "user", Addr: "10.0.0.1:9000"}}, got)
	got, err = r.Resolve(ctx, "order")
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestRegistrationOverridesConfiguration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := build(t, `{"group":"override","addrs":["127.0.0.1:9000","127.0.0.1:9001"]}`)
	require.NoError(t, err)
	w, err := r.Watch(ctx, "user")
	require.NoError(t, err)
	defer w.Stop()
	first, err := w.Next(ctx)
	require.NoError(t, err)
	require.Len(t, first, 2)

	// A server in the same process registers one of the configured
	// addresses with richer information, and a new one.
	srv, err := New(Config{Group: "override"})
	require.NoError(t, err)
	up := spi.Instance{Service: "user", Addr: "127.0.0.1:9001", Weight: 50, Version: "v2"}
	extra := spi.Instance{Service: "user", Addr: "127.0.0.1:9002"}
	require.NoError(t, srv.Register(ctx, up))
	require.NoError(t, srv.Register(ctx, extra))
	want := []spi.Instance{{Service: "user", Addr: "127.0.0.1:9000"}, up, extra}
	for {
		got, err := w.Next(ctx)
		require.NoError(t, err)
		if len(got) == 3 {
			assert.Equal(t, want, got)
			break
		}
	}

	// Withdrawing the registration falls back to the configured entry;
	// configured entries themselves cannot be withdrawn.
	require.NoError(t, srv.Close())
	for {
		got, err := w.Next(ctx)
		require.NoError(t, err)
		if len(got) == 2 {
			assert.Equal(t, first, got)
			break
		}
	}
	require.NoError(t, r.Deregister(ctx, spi.Instance{Service: "user", Addr: "127.0.0.1:9000"}))
	got, err := r.Resolve(ctx, "user")
	require.NoError(t, err)
	assert.Equal(t, first, got)
}

func TestGroupsAreSeparate(t *testing.T) {
	ctx := context.Background()
	a, err := New(Config{Group: "a"})
	require.NoError(t, err)
	defer a.Close()
	b, err := New(Config{Group: "b"})
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, a.Register(ctx, spi.Instance{Service: "user", Addr: "127.0.0.1:1"}))
	got, err := b.Resolve(ctx, "user")
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestBadConfig(t *testing.T) {
	for _, tc := range []struct{ cfg, want string }{
		{`{"addrs":["localhost"]}`, "not host:port"},
		{`{"addrs":["127.0.0.1:0"]}`, "invalid port"},
		{`{"addrs":[":9000"]}`, "no host"},
		{`{"addrs":["unix://"]}`, "no socket path"},
		{`{"addrs":["127.0.0.1:1","127.0.0.1:1"]}`, "listed twice"},
		{`{"addrs":["127.0.0.1:1"],"weights":{"127.0.0.1:2":"1"}}`, "not one of addrs"},
		{`{"addrs":["127.0.0.1:1"],"weights":{"127.0.0.1:1":"heavy"}}`, "not an integer"},
		{`{"addrs":["127.0.0.1:1"],"weights":{"127.0.0.1:1":-1}}`, "negative weight"},
		{`{"adrs":["127.0.0.1:1"]}`, "unknown field"},
	} {
		_, err := build(t, tc.cfg)
		if assert.Error(t, err, tc.cfg) {
			assert.Contains(t, err.Error(), tc.want, tc.cfg)
		}
	}
}

func TestRegisterValidates(t *testing.T) {
	r, err := New(Config{})
	require.NoError(t, err)
	err = r.Register(context.Background(), spi.Instance{Service: "user"})
	assert.Equal(t, spi.InvalidArgument, spi.CodeOf(err))
	require.NoError(t, r.Close())
	err = r.Register(context.Background(), spi.Instance{Service: "user", Addr: "127.0.0.1:1"})
	assert.Equal(t, spi.FailedPrecondition, spi.CodeOf(err))
	_, err = r.Watch(context.Background(), "user")
	assert.Error(t, err)
}
