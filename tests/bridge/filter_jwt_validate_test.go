package bridge

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	jwtfilter "github.com/kiterpc/kite/plugins/filter-jwt"
	validatefilter "github.com/kiterpc/kite/plugins/filter-validate"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// TestFilterJWT runs the filter suite on the jwt filter compiled in and
// bridged, with an HMAC key file; the bridged plugin must also refuse a
// token without a required scope with PermissionDenied and hand the
// verified claims down as kite-jwt-claims metadata.
func TestFilterJWT(t *testing.T) {
	secret := []byte("bridge-test-hmac-secret-of-32-bytes-or-more")
	keyFile := filepath.Join(t.TempDir(), "hs.key")
	if err := os.WriteFile(keyFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	token := func(scope string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "ada", "scope": scope, "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	cfg := `{"hmac_key_file":` + strconv.Quote(keyFile) + `,"claims_metadata":true,"scopes":{"Guarded.*":["admin"]}}`
	suite := spitest.FilterSuite{
		Prepare: func(call *spi.Call) {
			if call.Side == spi.ServerSide {
				call.Meta.Set(spi.MetaAuthorization, token("read"))
			}
		},
		Reject:     func(call *spi.Call) { call.Side = spi.ServerSide },
		RejectCode: spi.Unauthenticated,
	}
	for _, mode := range []string{"CompiledIn", "Bridged"} {
		t.Run(mode, func(t *testing.T) {
			var f spi.Filter
			if mode == "Bridged" {
				f = build[spi.Filter](t, load(t, "kite-filter-jwt", spi.KindFilter, jwtfilter.Name), cfg)
			} else {
				f = compiled[spi.Filter](t, spi.KindFilter, jwtfilter.Name, cfg)
			}
			s := suite
			s.Filter = f
			s.Run(t)

			invoke := func(method, auth string) (*jwtfilter.Claims, error) {
				call := &spi.Call{Side: spi.ServerSide, Method: method, Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
				call.Meta.Set(spi.MetaAuthorization, auth)
				call.Meta.Set(jwtfilter.MetaClaims, `{"sub":"forged"}`)
				var claims *jwtfilter.Claims
				err := f.Wrap(func(_ context.Context, c *spi.Call) error {
					claims, _ = jwtfilter.FromMetadata(c.Meta)
					return nil
				})(context.Background(), call)
				return claims, err
			}
			claims, err := invoke("Guarded.Op", token("read admin"))
			if err != nil || claims == nil || claims.Subject != "ada" || !claims.HasScope("admin") {
				t.Fatalf("claims through metadata: %+v, %v", claims, err)
			}
			if _, err := invoke("Guarded.Op", token("read")); spi.CodeOf(err) != spi.PermissionDenied {
				t.Fatalf("a token without the scope: %v, want PermissionDenied", err)
			}
			if _, err := invoke("Guarded.Op", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZGEifQ."); spi.CodeOf(err) != spi.Unauthenticated {
				t.Fatalf("alg=none: %v, want Unauthenticated", err)
			}
		})
	}
}

// TestFilterValidate runs the filter suite on the validate filter
// compiled in (refusing an invalid request with InvalidArgument) and
// bridged. Bridged, it never sees the request (values do not cross), so
// an invalid one passes: that documented limit is checked too, so a
// change to it is noticed.
func TestFilterValidate(t *testing.T) {
	type signup struct {
		Email string `json:"email" validate:"required,email"`
	}
	const cfg = `{"client":true}`
	t.Run("CompiledIn", func(t *testing.T) {
		spitest.FilterSuite{
			Filter:     compiled[spi.Filter](t, spi.KindFilter, validatefilter.Name, cfg),
			Reject:     func(call *spi.Call) { call.Request = &signup{Email: "nope"} },
			RejectCode: spi.InvalidArgument,
		}.Run(t)
	})
	t.Run("Bridged", func(t *testing.T) {
		f := build[spi.Filter](t, load(t, "kite-filter-validate", spi.KindFilter, validatefilter.Name), cfg)
		spitest.TestFilter(t, f)
		ran := false
		err := f.Wrap(func(context.Context, *spi.Call) error { ran = true; return nil })(context.Background(),
			&spi.Call{Side: spi.ServerSide, Method: "Accounts.Signup", Request: &signup{Email: "nope"}, Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}})
		if err != nil || !ran {
			t.Fatalf("bridged validate: ran %v, err %v (it cannot see the request)", ran, err)
		}
	})
}
