package authfilter_test

import (
	"context"
	"fmt"

	authfilter "github.com/kiterpc/kite/plugins/filter-auth"
	"github.com/kiterpc/kite/spi"
)

// A client sends its token; the server resolves it to a principal and
// applies the per-method allow-list.
func ExampleNewFilter() {
	client, _ := authfilter.NewFilter(authfilter.Options{Token: "alice-token"})
	server, _ := authfilter.NewFilter(authfilter.Options{
		Principals:    map[string]string{"alice": "alice-token", "ops": "ops-token"},
		PublicMethods: []string{"Health.Check"},
		Methods:       map[string][]string{"Admin.*": {"ops"}},
	})
	handler := server.Wrap(func(ctx context.Context, c *spi.Call) error {
		who, _ := authfilter.PrincipalFrom(ctx)
		fmt.Printf("%s called by %q\n", c.Method, who)
		return nil
	})
	send := client.Wrap(func(ctx context.Context, c *spi.Call) error {
		// The metadata is what crosses the wire.
		return handler(context.Background(), &spi.Call{Side: spi.ServerSide, Method: c.Method, Meta: c.Meta})
	})
	for _, m := range []string{"Users.Get", "Admin.Drop"} {
		if err := send(context.Background(), &spi.Call{Side: spi.ClientSide, Method: m}); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println(handler(context.Background(), &spi.Call{Side: spi.ServerSide, Method: "Users.Get"}))
	// Output:
	// Users.Get called by "alice"
	// kite: PermissionDenied: alice may not call Admin.Drop
	// kite: Unauthenticated: Users.Get needs a bearer token in "authorization" metadata
}
