// Package metricsfilter is the "metrics" filter: Prometheus series for every
// call, on the client and the server side alike.
//
// It keeps three families (prefixed by the configured namespace, "kite" by
// default):
//
//	kite_rpc_calls_total{side,method,code[,peer]}          counter
//	kite_rpc_duration_seconds{side,method[,peer]}          histogram
//	kite_rpc_in_flight{side,method}                        gauge
//
// side is "client" or "server", method is "Service.Method" and code is the
// spi.Code name ("OK", "NotFound", …), so error rates by code come from the
// one counter. The peer label is off by default: per-peer series multiply
// with every client address a server ever sees, which is how Prometheus
// servers fall over. With peer_label = true the server side records the
// caller's host (the port is dropped: it is ephemeral and would make every
// connection a new series) and the client side records the instance address
// the call went to, when the runtime reports it in Call.Peer. The in-flight
// gauge never carries a peer: on the client the peer is only known after the
// balancer has picked.
//
// Collectors register into Registerer (prometheus.DefaultRegisterer unless
// changed). Registering the same families twice — two filters in one process,
// say one in a client block and one in a server block — reuses the collectors
// already there, so both share series instead of failing. Handler serves the
// registry for an admin endpoint.
//
// The hot path does no label hashing for the common (no peer label) case:
// each (side, method) resolves its series once and caches them.
package metricsfilter
