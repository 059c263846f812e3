package health_test

import (
	"context"
	"fmt"

	"github.com/kiterpc/kite/core/health"
)

func ExampleService() {
	h := health.NewService()
	h.SetServing("Users", true)

	resp, _ := h.Check(context.Background(), &health.CheckRequest{Service: "Users"})
	fmt.Println(resp.Status)

	// Shutdown starts: every status turns NOT_SERVING and stays so.
	h.Shutdown()
	h.SetServing("Users", true)
	resp, _ = h.Check(context.Background(), &health.CheckRequest{Service: "Users"})
	fmt.Println(resp.Status)
	// Output:
	// SERVING
	// NOT_SERVING
}
