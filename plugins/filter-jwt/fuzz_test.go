package jwtfilter_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	jwtfilter "github.com/kiterpc/kite/plugins/filter-jwt"
	"github.com/kiterpc/kite/spi"
)

// FuzzVerify feeds arbitrary authorization values to a server-side
// filter trusting an HMAC key, an Ed25519 key and a JWKS. It must never
// panic; everything but the seeds' valid tokens must be refused with
// Unauthenticated, and no refusal may quote the token.
func FuzzVerify(f *testing.F) {
	ks := testKeys()
	fx := newFixture(f, func(o *jwtfilter.Options) { o.Now = func() time.Time { return base } })
	t := f
	good := []string{
		sign(t, jwt.SigningMethodHS256, ks.hmac, "", nil),
		sign(t, jwt.SigningMethodES256, ks.ec, "e1", nil),
		sign(t, jwt.SigningMethodEdDSA, ks.ed, "", nil),
	}
	for _, g := range good {
		f.Add("Bearer " + g)
		f.Add("Bearer " + g[:len(g)-3])
		f.Add("Bearer " + strings.Replace(g, ".", "..", 1))
	}
	f.Add("Bearer eyJhbGciOiJub25lIn0.e30.")
	f.Add("bearer   x.y.z")
	f.Add("")
	f.Fuzz(func(t *testing.T, auth string) {
		claims, err := fx.f.Verify(auth)
		if err == nil {
			if claims == nil || claims.Subject != "ada" {
				t.Fatalf("accepted %q with claims %+v", auth, claims)
			}
			return
		}
		if spi.CodeOf(err) != spi.Unauthenticated {
			t.Fatalf("refusal with %v: %v", spi.CodeOf(err), err)
		}
		tok := strings.TrimSpace(auth)
		if len(tok) > 16 && strings.Contains(err.Error(), tok[len(tok)-16:]) {
			t.Fatalf("refusal quotes the token: %v", err)
		}
	})
}
