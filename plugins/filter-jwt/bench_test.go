package jwtfilter_test

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	jwtfilter "github.com/kiterpc/kite/plugins/filter-jwt"
)

// BenchmarkVerify is the filter's per-call cost on a server: parse,
// verify the signature and the claims, by algorithm.
func BenchmarkVerify(b *testing.B) {
	ks := testKeys()
	fx := newFixture(b, func(o *jwtfilter.Options) { o.Now = func() time.Time { return base } })
	for _, c := range []struct {
		name string
		tok  string
	}{
		{"HS256", sign(b, jwt.SigningMethodHS256, ks.hmac, "", nil)},
		{"RS256", sign(b, jwt.SigningMethodRS256, ks.rsa, "r1", nil)},
		{"ES256", sign(b, jwt.SigningMethodES256, ks.ec, "e1", nil)},
		{"EdDSA", sign(b, jwt.SigningMethodEdDSA, ks.ed, "", nil)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			auth := "Bearer " + c.tok
			for b.Loop() {
				if _, err := fx.f.Verify(auth); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
