// Package stack assembles a running Kite stack from a kite.hcl: it is
// the step between core/config (which reads and checks the file) and
// core (which serves and calls).
//
//	st, err := stack.Load("kite.hcl")
//	defer st.Close()
//	// server side
//	err = st.Serve(ctx, "echo", func(s *core.Server) error { return s.Register("Echo", &echo{}) })
//	// client side
//	c, err := st.Client("echo")
//	err = c.Call(ctx, "Echo.Echo", req, &resp)
//
// An external plugin the file declares is started through spi/plugin
// when a block this process builds uses it — not at Load: a server does
// not start the balancer plugin only clients use. Its binary's sha256
// is checked before it runs (a mismatch names the file), and each block
// it serves is checked against the schema it reports. Check and
// StartPlugins start every declared plugin up front (kite check, kite
// plugins). Registries, balancers, filters, codecs and
// compressors are built through the catalog — or the plugin serving
// them — with their block's spi.Config when a server or client needs
// them; a failure names the kite.hcl position of the block (or of the
// reference, for an implementation used without a block).
//
// # Lifecycle choices, and why
//
//   - Registries are built once per label and shared by every server and
//     client of the stack: one ZooKeeper session or etcd lease per
//     process, and this process's own registrations are seen by its
//     watchers at once. Balancers and filters are built per client or
//     server, since they may keep per-client state.
//   - Serve registers the instance only after the listener accepts, and
//     on shutdown deregisters before core.Server.Shutdown: clients stop
//     choosing the instance while it still answers, GOAWAY moves the
//     rest, and calls in flight drain within shutdown_timeout.
//   - Client timeouts (and method-block timeouts) are applied by the
//     stack's outermost client filter from an atomically swapped
//     snapshot, not by core.ClientOptions.Timeout, so Reload can change
//     them under load. The balancer is swapped with
//     core.Client.SetBalancer: calls in flight finish on the old picker.
//     Discovery (service, target, registry) is switched with
//     core.Client.SetDiscovery: the old watch stops, the current
//     instances serve until the new source's first snapshot. Other client
//     changes (codec, filters, pool…) are reported as needing a restart,
//     never half-applied; a changed breaker block gives the client a fresh
//     set of breakers (core.Client.SetBreaker), changed retry and method
//     blocks fresh retry settings (core.Client.SetRetry). A registry block whose label was
//     already built keeps the instance built first (one session or lease
//     per process); a new label is built on reload.
//   - The retry block and method blocks map onto core's retry layer
//     (core.ClientOptions.Retry, RetryCodes, Methods); kite.hcl's
//     budget = 0 means "no retries" and becomes max_attempts = 1.
//   - The breaker block maps onto core.ClientOptions.Breaker; kite.hcl's
//     explicit 0 for a trigger (and enabled = false for both) becomes
//     the negative value with which the resilience package turns a
//     trigger off, since there 0 means "default".
//   - The "tls" transport is built from the server's or client's own tls
//     block, handed to the catalog's "tls" transport (core.TLS).
package stack
