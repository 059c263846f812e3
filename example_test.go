package kite_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kiterpc/kite"
)

type User struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type UserService struct{}

func (UserService) GetByID(ctx context.Context, id int64) (*User, error) {
	if id != 1001 {
		return nil, kite.Errorf(kite.NotFound, "no user %d", id)
	}
	return &User{ID: id, Name: "Ada"}, nil
}

// A server and a client on loopback: a sync call, an async call and a
// typed error crossing the wire.
func Example() {
	ctx := context.Background()
	srv, _ := kite.NewServer(kite.ServerOptions{Logger: kite.NullLogger()})
	_ = srv.Register("UserService", UserService{})
	ln, _ := srv.Listen(ctx, "127.0.0.1:0")
	defer srv.Close()

	c, _ := kite.NewClient(kite.ClientOptions{
		Targets: []string{ln.Addr().String()},
		Retry:   &kite.RetryPolicy{MaxAttempts: 2, Idempotent: []string{"UserService.*"}},
		Breaker: &kite.BreakerConfig{ConsecutiveFailures: 10},
		Logger:  kite.NullLogger(),
	})
	defer c.Close()

	var u User
	_ = c.Call(ctx, "UserService.GetByID", int64(1001), &u)
	fmt.Println("sync:", u.Name)

	f := c.Go(ctx, "UserService.GetByID", int64(1001), &User{})
	_ = f.Wait()
	fmt.Println("async:", f.Response.(*User).Name)

	err := c.Call(ctx, "UserService.GetByID", int64(7), &u)
	fmt.Println("error:", kite.CodeOf(err), errors.Is(err, kite.ErrNotFound))

	tctx, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-tctx.Done()
	err = c.Call(tctx, "UserService.GetByID", int64(1001), &u)
	fmt.Println("deadline:", kite.CodeOf(err))
	// Output:
	// sync: Ada
	// async: Ada
	// error: NotFound true
	// deadline: DeadlineExceeded
}
