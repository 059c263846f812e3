// Package grpcinterop tests Kite clients calling plain grpc-go servers
// through core.GRPCTransport, with a registry, a balancer and filters in
// front (issue 12).
package grpcinterop
