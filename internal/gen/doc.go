// Package gen is the stub generator shared by `kite gen` (typed stubs from
// a Go interface) and protoc-gen-kite (typed stubs from .proto services).
//
// Both front ends reduce their input to the same model — a File of
// Services of Methods, with every Go type already written as a qualified
// type expression — and one emitter turns the model into Go source:
//
//   - a typed client over *core.Client: unary methods call Client.Call,
//     streaming methods wrap a *core.Stream in typed Send/Recv;
//   - a core.ServiceDesc whose handlers call the implementation directly
//     (one type assertion, no reflection), and a Register function.
//
// Two styles differ only in the API surface. StyleInterface (kite gen)
// implements an interface the user already wrote, so a caller's
// `users.GetByID(ctx, 1001)` is an ordinary method call on that interface.
// StyleProto (protoc-gen-kite) declares <Service>Client and
// <Service>Server interfaces, the way protoc-gen-go-grpc does, because a
// .proto file has no Go interface to implement. StyleProto services are
// named on the wire by their full proto name ("eco.v1.Inventory", as
// gRPC's paths), StyleInterface ones by a short name (docs/PROTOCOL.md,
// "Method names").
//
// Output is formatted with go/format and starts with the standard
// "Code generated ... DO NOT EDIT." line.
package gen
