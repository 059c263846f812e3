// Package metricsfilter is the "metrics" filter: Prometheus series for every
// call, on the client and the server side alike.
//
// It keeps three families (prefixed by the configured namespace, "kite" by
// default):
//
//	kite_rpc_calls_total{side,method,code[,peer]}          counter
//	kite_rpc_duration_seconds{side,method[,peer]}          histogram
//	kite_rpc_in_flight{side,method}                        gauge
//	kite_rpc_server_rejected_total{method,code,reason}     counter
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
// balancer has picked. The peer label is capped (Options.MaxPeers, default
// 256): later peers count as "_other" until a labelled peer has been idle
// for Options.PeerTTL (default 10 minutes), gives up its slot and has its
// series deleted, so churning clients cannot grow the series without bound.
//
// Filter implements spi.RejectObserver: a call the server refused before its
// chain (an unknown method, labelled "_OTHER"; draining; admission limits;
// body memory; an expired deadline) counts in calls_total with the code the
// caller got and in server_rejected_total with the reason.
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
