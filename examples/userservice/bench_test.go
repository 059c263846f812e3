package main

import (
	"context"
	"testing"

	"github.com/kiterpc/kite/core"
)

// nopUsers answers GetByID with a fixed user, so the dispatch
// micro-benchmark measures the dispatch and nothing else.
type nopUsers struct{ store }

var ada = &User{ID: 1001, Name: "Ada Lovelace", Email: "ada@example.com"}

func (*nopUsers) GetByID(context.Context, int64) (*User, error) { return ada, nil }

func methodDesc(b *testing.B, d *core.ServiceDesc, name string) core.MethodDesc {
	for _, m := range d.Methods {
		if m.Name == name {
			return m
		}
	}
	b.Fatalf("no method %s", name)
	return core.MethodDesc{}
}

// BenchmarkDispatch measures what the server does per unary call between
// decoding and encoding: allocate the request, run the handler. The
// generated handler is a type assertion and a direct call; the
// reflective one (core.ReflectService, used by Server.Register) goes
// through reflect.Value.Call.
func BenchmarkDispatch(b *testing.B) {
	impl := &nopUsers{}
	refl, err := core.ReflectService("UserService", impl)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		m    core.MethodDesc
	}{
		{"generated", methodDesc(b, &UserService_ServiceDesc, "GetByID")},
		{"reflective", methodDesc(b, refl, "GetByID")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				req := bc.m.NewRequest()
				*req.(*int64) = 1001
				resp, err := bc.m.Handler(ctx, impl, req)
				if err != nil || resp.(*User) != ada {
					b.Fatal(resp, err)
				}
			}
		})
	}
}

// BenchmarkCall measures a whole GetByID call over loopback TCP with the
// JSON codec — client stub, framing, server dispatch and back — with the
// server registered both ways.
func BenchmarkCall(b *testing.B) {
	for _, bc := range []struct {
		name       string
		reflective bool
	}{{"generated", false}, {"reflective", true}} {
		b.Run(bc.name, func(b *testing.B) {
			users := dial(b, startServer(b, newStore(), bc.reflective))
			ctx := context.Background()
			if _, err := users.GetByID(ctx, 1001); err != nil { // connect outside the timing
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.Run("serial", func(b *testing.B) {
				for b.Loop() {
					if _, err := users.GetByID(ctx, 1001); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := users.GetByID(ctx, 1001); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}
