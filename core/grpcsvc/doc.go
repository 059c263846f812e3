// Package grpcsvc adds gRPC's own services to a Kite server that has gRPC
// enabled (core.Server.EnableGRPC):
//
//   - grpc.health.v1.Health (Check and Watch), backed by Kite's health
//     service (core/health): the statuses Kite's Health.Check reports,
//     NOT_SERVING as soon as a drain begins, so Kubernetes gRPC probes and
//     grpc_health_probe see what Kite clients see; Watch behaves as
//     grpc-go's (SERVICE_UNKNOWN, open through Shutdown and Resume) but
//     ends when the server stops;
//   - grpc.reflection.v1.ServerReflection, so grpcurl and other tools can
//     list, describe and call Kite services without .proto files.
//
// # Design choices, and why
//
//   - Both are registered with core.Server.RegisterGRPC under their proto
//     names (gRPC-only: Kite's protocol does not serve them) and run behind the
//     server's filters like every other call: a server that demands a
//     token for everything demands it of probes too; exempt them in the
//     filter by method ("grpc.health.v1.Health.Check") if needed.
//   - Health names: a gRPC client asks for "pkg.Service", the name proto
//     services have in Kite too. A name the health service does not know
//     is looked up again without its package (a Go service's short name).
//   - Reflection lists a proto service under its full name (found in the
//     global registry) and a Go service by the proto file that declares
//     a service of its name, found from its message types. A service
//     whose unary messages are protobuf but which no loaded file declares
//     gets a file synthesized at run time: "kite/<Service>.proto", package
//     "kite". Services whose messages are not protobuf (JSON structs) are
//     listed but cannot be described: there is no schema to give.
package grpcsvc
