package gen_test

import (
	"fmt"
	"strings"

	"github.com/kiterpc/kite/internal/gen"
)

// Emit renders a model; kite gen builds the model with LoadInterface and
// protoc-gen-kite with ProtoFile. Here a one-method service is described
// by hand.
func ExampleEmit() {
	f := &gen.File{
		Style:   gen.StyleInterface,
		Package: "users",
		Imports: gen.NewImports("example.com/users"),
		Services: []gen.Service{{
			Name:   "UserService",
			GoName: "UserService",
			Methods: []gen.Method{{
				Name:       "GetByID",
				Req:        gen.ValueType("int64"),
				Resp:       gen.PointerType("User"),
				Idempotent: true,
			}},
		}},
	}
	src, err := gen.Emit(f)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, line := range strings.Split(string(src), "\n") {
		if strings.Contains(line, "NewRequest") || strings.Contains(line, "return srv.") ||
			strings.HasPrefix(line, "func ") {
			fmt.Println(strings.TrimSpace(line))
		}
	}
	// Output:
	// func NewUserServiceClient(c *core.Client) UserService {
	// func (x *userServiceClient) GetByID(ctx context.Context, req int64) (*User, error) {
	// NewRequest: func() any { return new(int64) },
	// return srv.(UserService).GetByID(ctx, *req.(*int64))
	// func RegisterUserService(s *core.Server, impl UserService) error {
}
