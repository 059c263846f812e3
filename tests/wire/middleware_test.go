package wire

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	hessiancodec "github.com/kiterpc/kite/plugins/codec-hessian"
	jwtfilter "github.com/kiterpc/kite/plugins/filter-jwt"
	validatefilter "github.com/kiterpc/kite/plugins/filter-validate"
	"github.com/kiterpc/kite/spi"
)

// SignupReq travels in Hessian as a Java object and carries validation
// rules.
type SignupReq struct {
	_     struct{} `java:"kite.wire.SignupReq"`
	Email string   `json:"email" hessian:"email" validate:"required,email"`
	Age   int32    `json:"age" hessian:"age" validate:"gte=18"`
}

type SignupResp struct {
	_       struct{} `java:"kite.wire.SignupResp"`
	Subject string   `hessian:"subject"`
	Email   string   `hessian:"email"`
}

type accounts struct{}

// Signup answers with the caller's verified subject: the claims reached
// the handler.
func (accounts) Signup(ctx context.Context, req *SignupReq) (*SignupResp, error) {
	claims, ok := jwtfilter.FromContext(ctx)
	if !ok {
		return nil, spi.Errorf(spi.Internal, "no claims in the handler's context")
	}
	return &SignupResp{Subject: claims.Subject, Email: req.Email}, nil
}

func (accounts) Delete(ctx context.Context, req *SignupReq) (*SignupResp, error) {
	return &SignupResp{}, nil
}

// TestMiddlewareOnTheWire runs the jwt and validate filters and the
// Hessian codec in a real server and client over loopback: the codes and
// the validation details must survive the wire.
func TestMiddlewareOnTheWire(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("wire-test-hmac-secret-of-at-least-32-bytes")
	keyFile := filepath.Join(dir, "hs.key")
	require.NoError(t, os.WriteFile(keyFile, secret, 0o600))
	token := func(claims jwt.MapClaims) string {
		c := jwt.MapClaims{"sub": "ada", "iss": "kite-test", "exp": time.Now().Add(time.Hour).Unix(), "scope": "signup"}
		for k, v := range claims {
			c[k] = v
		}
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
		require.NoError(t, err)
		return s
	}

	jf, err := jwtfilter.NewFilter(jwtfilter.Options{HMACKeyFile: keyFile, Issuer: "kite-test",
		Scopes: map[string][]string{"Accounts.Delete": {"admin"}}, Logger: hclog.NewNullLogger()})
	require.NoError(t, err)
	vf, err := validatefilter.NewFilter(validatefilter.Options{})
	require.NoError(t, err)
	hc := hessiancodec.New()
	srv, err := core.NewServer(core.ServerOptions{Codecs: []spi.Codec{hc}, Filters: []spi.Filter{jf, vf}, Logger: hclog.NewNullLogger()})
	require.NoError(t, err)
	require.NoError(t, srv.Register("Accounts", accounts{}))
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	require.NoError(t, err)
	defer srv.Close()

	// The client sends the token from a file through its own jwt filter.
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token(nil)), 0o600))
	cf, err := jwtfilter.NewFilter(jwtfilter.Options{TokenFile: tokenFile})
	require.NoError(t, err)
	c, err := core.NewClient(core.ClientOptions{Targets: []string{ln.Addr().String()}, Codec: hc, Filters: []spi.Filter{cf},
		Logger: hclog.NewNullLogger()})
	require.NoError(t, err)
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var resp SignupResp
	require.NoError(t, c.Call(ctx, "Accounts.Signup", &SignupReq{Email: "ada@example.com", Age: 36}, &resp))
	require.Equal(t, "ada", resp.Subject, "the verified subject reached the handler")
	require.Equal(t, "ada@example.com", resp.Email)

	// Invalid request: InvalidArgument, field paths in the details.
	err = c.Call(ctx, "Accounts.Signup", &SignupReq{Email: "nope", Age: 7}, &resp)
	require.Equal(t, spi.InvalidArgument, spi.CodeOf(err), "%v", err)
	require.Equal(t, []validatefilter.Violation{
		{Field: "age", Description: "must be at least 18"},
		{Field: "email", Description: "must be an email address"},
	}, validatefilter.Violations(err), "violations after the wire")

	// A valid token without the method's scope: PermissionDenied.
	err = c.Call(ctx, "Accounts.Delete", &SignupReq{Email: "ada@example.com", Age: 36}, &resp)
	require.Equal(t, spi.PermissionDenied, spi.CodeOf(err), "%v", err)

	// The jwt filter reads metadata only (spi.MetadataFilter), so the
	// server refuses a call without a token before decoding its body: a
	// body no codec could decode into SignupReq still gets
	// Unauthenticated, not InvalidArgument.
	raw, err := core.NewClient(core.ClientOptions{Targets: []string{ln.Addr().String()}, Codec: core.RawCodec{}, Logger: hclog.NewNullLogger()})
	require.NoError(t, err)
	defer raw.Close()
	garbage := []byte{0xff, 0xfe, 0xfd}
	var out []byte
	err = raw.Call(ctx, "Accounts.Signup", &garbage, &out)
	require.Equal(t, spi.Unauthenticated, spi.CodeOf(err), "%v", err)

	// Per-call credentials (they win over the filter's token file).
	for _, bad := range []struct{ name, auth string }{
		{"expired", "Bearer " + token(jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()})},
		{"wrong issuer", "Bearer " + token(jwt.MapClaims{"iss": "elsewhere"})},
		{"alg none", "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhZGEiLCJpc3MiOiJraXRlLXRlc3QifQ."},
		{"forged", "Bearer " + token(nil)[:20] + "x" + token(nil)[21:]},
		{"not bearer", "Basic YWRhOnB3"},
	} {
		md := &spi.Metadata{}
		md.Set(spi.MetaAuthorization, bad.auth)
		err := c.Call(core.WithMetadata(ctx, md), "Accounts.Signup", &SignupReq{Email: "ada@example.com", Age: 36}, &resp)
		require.Equal(t, spi.Unauthenticated, spi.CodeOf(err), "%s: %v", bad.name, err)
	}
}
