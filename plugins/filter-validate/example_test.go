package validatefilter_test

import (
	"context"
	"fmt"

	validatefilter "github.com/kiterpc/kite/plugins/filter-validate"
	"github.com/kiterpc/kite/spi"
)

func Example() {
	type Signup struct {
		Email string `json:"email" validate:"required,email"`
		Age   int    `json:"age" validate:"gte=18"`
	}
	f, _ := validatefilter.NewFilter(validatefilter.Options{})
	handler := func(context.Context, *spi.Call) error { return nil }
	call := &spi.Call{Side: spi.ServerSide, Method: "Accounts.Signup", Request: &Signup{Email: "nobody", Age: 7}}
	err := f.Wrap(handler)(context.Background(), call)
	fmt.Println(spi.CodeOf(err))
	for _, v := range validatefilter.Violations(err) {
		fmt.Printf("%s: %s\n", v.Field, v.Description)
	}
	// Output:
	// InvalidArgument
	// age: must be at least 18
	// email: must be an email address
}
