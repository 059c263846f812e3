package jwtfilter_test

import (
	"context"
	"fmt"

	jwtfilter "github.com/kiterpc/kite/plugins/filter-jwt"
)

// A handler reads the caller's verified claims from its context.
func ExampleFromContext() {
	handler := func(ctx context.Context) error {
		claims, ok := jwtfilter.FromContext(ctx)
		if !ok {
			return fmt.Errorf("no claims: is the jwt filter in the chain?")
		}
		fmt.Println(claims.Subject, claims.HasScope("billing:read"))
		return nil
	}
	// In a server the filter puts them there; WithClaims does it for tests.
	ctx := jwtfilter.WithClaims(context.Background(), &jwtfilter.Claims{Subject: "ada", Scopes: []string{"billing:read"}})
	_ = handler(ctx)
	// Output: ada true
}
