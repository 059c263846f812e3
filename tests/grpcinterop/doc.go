// Package grpcinterop tests Kite clients calling plain grpc-go servers
// through core.GRPCTransport, with a registry, a balancer and filters in
// front (issue 12); over TLS (a grpc-go server with
// credentials.NewTLS requiring client certificates, configured through
// ClientOptions and through kite.hcl); and Kite's health helpers from a
// proto-codec client, against a Kite server and grpc-go's health server.
package grpcinterop
