// Package health is the health service every Kite server built by
// core/stack exposes as service "Health":
//
//	Health.Check(ctx, *CheckRequest{Service}) (*CheckResponse{Status}, error)
//	Health.Watch   server-streaming: one CheckRequest in, a CheckResponse
//	               now and on every change of that service's status
//
// Service "" is the server as a whole; other services are named as they
// are on the wire ("Echo" for a Go service, "eco.v1.Inventory" for a
// proto service; a short "Inventory" finds the one "pkg.Inventory" while
// it is the only one, as short method names do). A status is "SERVING", "NOT_SERVING" or, in Watch for a
// service the server does not know (yet), "SERVICE_UNKNOWN" — the names
// and behaviour of grpc.health.v1 (core/grpcsvc serves that one over
// gRPC from the same Service). `kite call <client> Health.Check '{}'` asks a server from the
// terminal; registries' health checks and load balancers can ask the
// same.
//
// # Design choices, and why
//
//   - CheckRequest and CheckResponse are JSON structs ({"service":…},
//     {"status":"SERVING"}) that also have a protobuf form, the bytes of
//     grpc.health.v1's HealthCheckRequest/Response (wire.go), which the
//     proto codec uses: so Check and Watch work from a client of any
//     codec, JSON, auto or proto. Not a per-call codec (the call API has
//     none, and a JSON health call from a proto client would need the
//     server to link the JSON codec), and not proto.Message types (the
//     JSON and auto codecs would then switch every existing client's
//     health calls to protojson / protobuf).
//   - The service is registered through a hand-written core.ServiceDesc
//     whose handlers call Check and Watch directly: a health probe is
//     called often and must not pay for reflection.
//   - Check of a service the server never announced answers NotFound
//     (as gRPC's health service does): a probe with a misspelt name must
//     fail loudly rather than look healthy or merely unhealthy. Watch of
//     such a service sends "SERVICE_UNKNOWN" and keeps watching, since
//     the service may be registered later (as grpc-go's health server).
//   - Shutdown sets every status to NOT_SERVING and ignores later
//     SetServing calls (a late "ready" must not undo a drain); Resume
//     sets every status to SERVING — both as grpc-go's health server.
//     Watch streams stay open through both and report each change.
//   - A Watch stream ends (NOT_SERVING, then a clean end) when its server
//     begins to stop (core.Server.Stopping; Register wires it): a
//     graceful server shutdown waits for streams in progress, and a
//     watch would otherwise hold the drain for the whole shutdown
//     timeout. grpc-go's GracefulStop does wait for watches; here the
//     watcher sees the same last status and reconnects elsewhere.
//   - Watchers are woken by closing a channel that is replaced on every
//     change (a broadcast without a goroutine per watcher); a watcher
//     that misses intermediate changes sends the latest status, so a
//     slow reader sees the present, never a backlog.
package health
