package authfilter

import (
	"context"
	"errors"
	"testing"

	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// handler records the principal the filter passed down.
type handler struct {
	calls     int
	principal string
}

func (h *handler) invoke(ctx context.Context, c *spi.Call) error {
	h.calls++
	h.principal, _ = PrincipalFrom(ctx)
	return nil
}

func serverCall(method, authorization string) *spi.Call {
	c := &spi.Call{Side: spi.ServerSide, Method: method, Peer: "127.0.0.1:5000"}
	if authorization != "" {
		c.Meta = &spi.Metadata{}
		c.Meta.Set(spi.MetaAuthorization, authorization)
	}
	return c
}

func TestClientAddsBearerToken(t *testing.T) {
	f, err := NewFilter(Options{Token: "  s3cret\n"}) // env values often end in a newline
	require.NoError(t, err)
	var got []string
	inv := f.Wrap(func(ctx context.Context, c *spi.Call) error {
		got = append(got, c.Meta.Get(spi.MetaAuthorization))
		return nil
	})
	require.NoError(t, inv(context.Background(), &spi.Call{Side: spi.ClientSide, Method: "Svc.M"}))
	md := &spi.Metadata{}
	md.Set("tenant", "acme")
	require.NoError(t, inv(context.Background(), &spi.Call{Side: spi.ClientSide, Method: "Svc.M", Meta: md}))
	override := &spi.Metadata{}
	override.Set(spi.MetaAuthorization, "Bearer per-call")
	require.NoError(t, inv(context.Background(), &spi.Call{Side: spi.ClientSide, Method: "Svc.M", Meta: override}))
	require.Equal(t, []string{"Bearer s3cret", "Bearer s3cret", "Bearer per-call"}, got)
	require.Equal(t, "acme", md.Get("tenant"))

	// A filter without a client token leaves client calls alone.
	srvOnly, err := NewFilter(Options{Tokens: []string{"x"}})
	require.NoError(t, err)
	c := &spi.Call{Side: spi.ClientSide, Method: "Svc.M"}
	require.NoError(t, srvOnly.Wrap(func(context.Context, *spi.Call) error { return nil })(context.Background(), c))
	require.Nil(t, c.Meta)
}

func TestServerAuthenticates(t *testing.T) {
	f, err := NewFilter(Options{Tokens: []string{"tok-a", "tok-b"}, Principals: map[string]string{"alice": "alice-secret"}})
	require.NoError(t, err)
	h := &handler{}
	inv := f.Wrap(h.invoke)
	ctx := context.Background()

	for _, bad := range []string{"", "tok-a", "Basic dG9rLWE=", "Bearer ", "Bearer   ", "Bearertok-a", "Bearer tok-c", "Bearer tok-a2", "Bearer tok-"} {
		err := inv(ctx, serverCall("Svc.M", bad))
		require.ErrorIs(t, err, spi.ErrUnauthenticated, "authorization %q", bad)
		require.NotContains(t, err.Error(), "tok-", "errors never echo tokens")
	}
	require.Zero(t, h.calls, "the handler never ran")

	require.NoError(t, inv(ctx, serverCall("Svc.M", "Bearer tok-b")))
	require.Equal(t, TokenPrincipal("tok-b"), h.principal)
	require.Regexp(t, `^token-[0-9a-f]{8}$`, h.principal)
	require.NoError(t, inv(ctx, serverCall("Svc.M", "bearer alice-secret")), "the scheme is case-insensitive")
	require.Equal(t, "alice", h.principal)
	require.Equal(t, 2, h.calls)
}

func TestMethodRules(t *testing.T) {
	f, err := NewFilter(Options{
		Principals:    map[string]string{"alice": "a", "ops": "o", "auditor": "u"},
		PublicMethods: []string{"Health.*", "Users.Ping"},
		Methods: map[string][]string{
			"Admin.*":         {"ops"},
			"Admin.Audit":     {"ops", "auditor"}, // exact beats the service pattern
			"Admin.Sub.*":     {"auditor"},        // the longer prefix wins
			"Users.DeleteAll": {},                 // nobody
		},
	})
	require.NoError(t, err)
	h := &handler{}
	inv := f.Wrap(h.invoke)
	ctx := context.Background()
	cases := []struct {
		method, token string
		want          error
	}{
		{"Health.Check", "", nil},
		{"Health.Check", "Bearer wrong", nil}, // public: the token is not even looked at
		{"Users.Ping", "", nil},
		{"Users.Get", "", spi.ErrUnauthenticated},
		{"Users.Get", "Bearer a", nil}, // no rule: any principal
		{"Users.Get", "Bearer u", nil},
		{"Admin.Drop", "Bearer a", spi.ErrPermissionDenied},
		{"Admin.Drop", "Bearer u", spi.ErrPermissionDenied},
		{"Admin.Drop", "Bearer o", nil},
		{"Admin.Drop", "Bearer nope", spi.ErrUnauthenticated}, // authentication comes first
		{"Admin.Audit", "Bearer u", nil},
		{"Admin.Audit", "Bearer o", nil},
		{"Admin.Audit", "Bearer a", spi.ErrPermissionDenied},
		{"Admin.Sub.X", "Bearer u", nil},
		{"Admin.Sub.X", "Bearer o", spi.ErrPermissionDenied},
		{"Users.DeleteAll", "Bearer o", spi.ErrPermissionDenied},
		{"Adminx.Drop", "Bearer a", nil}, // "Admin.*" is a service, not a string prefix
	}
	for _, tc := range cases {
		err := inv(ctx, serverCall(tc.method, tc.token))
		if tc.want == nil {
			require.NoError(t, err, "%s %q", tc.method, tc.token)
		} else {
			require.ErrorIs(t, err, tc.want, "%s %q", tc.method, tc.token)
		}
	}
	err = inv(ctx, serverCall("Admin.Drop", "Bearer a"))
	require.EqualError(t, err, "kite: PermissionDenied: alice may not call Admin.Drop")

	everything, err := NewFilter(Options{Principals: map[string]string{"ops": "o", "bob": "b"}, Methods: map[string][]string{"*": {"ops"}}})
	require.NoError(t, err)
	require.ErrorIs(t, everything.Wrap(h.invoke)(ctx, serverCall("Any.Thing", "Bearer b")), spi.ErrPermissionDenied)
	require.NoError(t, everything.Wrap(h.invoke)(ctx, serverCall("Any.Thing", "Bearer o")))
}

func TestVerifier(t *testing.T) {
	var seen []string
	v := VerifierFunc(func(ctx context.Context, token, method string) (string, error) {
		seen = append(seen, token+"@"+method)
		switch token {
		case "jwt-carol":
			return "carol", nil
		case "jwt-down":
			return "", spi.Errorf(spi.Unavailable, "identity provider unreachable")
		case "jwt-readonly":
			return "", spi.Errorf(spi.PermissionDenied, "read-only token")
		}
		return "", errors.New("signature mismatch")
	})
	f, err := NewFilter(Options{Tokens: []string{"static"}, Verifier: v, Methods: map[string][]string{"Admin.*": {"carol"}}})
	require.NoError(t, err)
	h := &handler{}
	inv := f.Wrap(h.invoke)
	ctx := context.Background()

	require.NoError(t, inv(ctx, serverCall("Admin.Drop", "Bearer jwt-carol")))
	require.Equal(t, "carol", h.principal)
	require.NoError(t, inv(ctx, serverCall("Users.Get", "Bearer static")), "static tokens are tried first")
	require.ErrorIs(t, inv(ctx, serverCall("Admin.Drop", "Bearer static")), spi.ErrPermissionDenied)
	require.ErrorIs(t, inv(ctx, serverCall("Users.Get", "Bearer jwt-down")), spi.ErrUnavailable)
	require.ErrorIs(t, inv(ctx, serverCall("Users.Get", "Bearer jwt-readonly")), spi.ErrPermissionDenied)
	err = inv(ctx, serverCall("Users.Get", "Bearer forged"))
	require.ErrorIs(t, err, spi.ErrUnauthenticated)
	require.ErrorContains(t, errors.Unwrap(err), "signature mismatch", "the cause stays local")
	require.Equal(t, []string{"jwt-carol@Admin.Drop", "jwt-down@Users.Get", "jwt-readonly@Users.Get", "forged@Users.Get"}, seen)
}

func TestServerWithoutCredentialsFailsClosed(t *testing.T) {
	f, err := NewFilter(Options{Token: "client-only"})
	require.NoError(t, err)
	err = f.Wrap((&handler{}).invoke)(context.Background(), serverCall("Svc.M", "Bearer client-only"))
	require.ErrorIs(t, err, spi.ErrUnauthenticated)
	require.ErrorContains(t, err, "no tokens")
}

func TestClientToServer(t *testing.T) {
	cli, err := NewFilter(Options{Token: "svc-token"})
	require.NoError(t, err)
	srv, err := NewFilter(Options{Principals: map[string]string{"billing": "svc-token"}})
	require.NoError(t, err)
	h := &handler{}
	server := srv.Wrap(h.invoke)
	client := cli.Wrap(func(ctx context.Context, c *spi.Call) error {
		return server(context.Background(), &spi.Call{Side: spi.ServerSide, Method: c.Method, Meta: c.Meta.Clone()})
	})
	require.NoError(t, client(context.Background(), &spi.Call{Side: spi.ClientSide, Method: "Billing.Charge"}))
	require.Equal(t, "billing", h.principal)
}

func TestConfig(t *testing.T) {
	RegisterVerifier("test-jwt", VerifierFunc(func(ctx context.Context, token, method string) (string, error) {
		if token == "good" {
			return "jwt-user", nil
		}
		return "", errors.New("bad")
	}))
	v, err := spi.Default.Build(spi.KindFilter, "auth", spi.Config(`{
		"principals": {"ops": "o-token"},
		"verifier": "test-jwt",
		"public_methods": ["Health.Check"],
		"methods": {"Admin.*": ["ops"]}
	}`))
	require.NoError(t, err)
	h := &handler{}
	inv := v.(spi.Filter).Wrap(h.invoke)
	ctx := context.Background()
	require.NoError(t, inv(ctx, serverCall("Health.Check", "")))
	require.NoError(t, inv(ctx, serverCall("Users.Get", "Bearer good")))
	require.Equal(t, "jwt-user", h.principal)
	require.ErrorIs(t, inv(ctx, serverCall("Admin.X", "Bearer good")), spi.ErrPermissionDenied)
	require.NoError(t, inv(ctx, serverCall("Admin.X", "Bearer o-token")))

	for cfg, msg := range map[string]string{
		`{}`:                                   "set token",
		`{"token": "   "}`:                     "blank",
		`{"token": "two words"}`:               "whitespace",
		`{"tokens": ["a", ""]}`:                "tokens[1]",
		`{"principals": {"x": "t", "y": "t"}}`: "share a token",
		`{"tokens": ["t"], "methods": {"Ad*min.X": ["x"]}}`: "pattern",
		`{"tokens": ["t"], "public_methods": ["*.Check"]}`:  "pattern",
		`{"verifier": "nope"}`:                              "not registered",
		`{"tokens": "t"}`:                                   "decoding",
	} {
		_, err := spi.Default.Build(spi.KindFilter, "auth", spi.Config(cfg))
		require.ErrorContains(t, err, msg, cfg)
	}
}

func BenchmarkServer(b *testing.B) {
	keys := map[string]string{}
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		keys[n] = "token-of-" + n
	}
	f, err := NewFilter(Options{Principals: keys, Methods: map[string][]string{"Admin.*": {"a"}}})
	require.NoError(b, err)
	inv := f.Wrap(func(context.Context, *spi.Call) error { return nil })
	c := serverCall("Users.Get", "Bearer token-of-h")
	b.ReportAllocs()
	for b.Loop() {
		if err := inv(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}
