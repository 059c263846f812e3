package validatefilter_test

import (
	"context"
	"testing"

	validatefilter "github.com/kiterpc/kite/plugins/filter-validate"
	"github.com/kiterpc/kite/spi"
)

// BenchmarkValid is the filter's per-call cost on a server for a valid
// request with nested struct, list and email rules (the common case).
func BenchmarkValid(b *testing.B) {
	f, err := validatefilter.NewFilter(validatefilter.Options{})
	if err != nil {
		b.Fatal(err)
	}
	inv := f.Wrap(func(context.Context, *spi.Call) error { return nil })
	call := &spi.Call{Side: spi.ServerSide, Method: "Users.Create", Request: validUser(), Meta: &spi.Metadata{}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := inv(ctx, call); err != nil {
			b.Fatal(err)
		}
	}
}
