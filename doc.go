// Package kite is the front door of the Kite RPC framework: servers,
// clients, streams and the error type that crosses the wire, re-exported
// from core and spi so an application imports one package.
//
// Importing kite links the default plugin set: the JSON codec and the
// weighted balancer (the defaults of core/defaults) and the recover and log
// filters. Everything else (registries, other balancers, compressors, the
// protobuf codec) is linked by importing its plugin package, or loaded out
// of process from kite.hcl. Every type an option field holds (Registry,
// RetryPolicy, BreakerConfig, Logger, …) and every status code's sentinel
// error has a name here.
//
//	srv, _ := kite.NewServer(kite.ServerOptions{})
//	srv.Register("Echo", &EchoService{})
//	srv.Listen(ctx, "127.0.0.1:9000")
//
//	c, _ := kite.NewClient(kite.ClientOptions{Targets: []string{"127.0.0.1:9000"}})
//	err := c.Call(ctx, "Echo.Say", &Req{Text: "hi"}, &resp)
package kite
