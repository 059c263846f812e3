// Package observability holds end-to-end tests of the observability and
// security filters (metrics, tracing, auth, ratelimit) over real loopback
// Kite servers and clients: the filters' own tests stay free of core, these
// prove they work where they are meant to — in the runtime's chains, across
// the wire, and built from kite.hcl.
package observability
