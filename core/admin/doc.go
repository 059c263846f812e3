// Package admin is Kite's operations HTTP listener: what an operator or a
// scraper asks a running process.
//
//	/              status page: servers, services and methods, health,
//	               connections, clients (instances, retries, ejections,
//	               breaker states), plugins (kind, name, version, source,
//	               sha256) and the registry view
//	/metrics       Prometheus exposition (the default registry, where the
//	               metrics filter registers, unless Options.Gatherer)
//	/healthz       200 when every server is SERVING, else 503; JSON body
//	/debug/pprof/  Go's profiles (net/http/pprof), when Options.Pprof
//	               (off unless kite.hcl says admin { pprof = true })
//
// It is opt-in through kite.hcl's top-level `admin { listen = "…" }`
// block, which core/stack turns into a Server fed by the stack itself.
// It binds 127.0.0.1:9100 by default.
//
// Probes is a second, separate listener for Kubernetes (kite.hcl's
// `probes {}` block, ":9101" by default):
//
//	/healthz  liveness (also /livez): 200 while every server is starting, serving or
//	          draining; 503 once one has stopped
//	/readyz   readiness: 200 when every server is serving (registered,
//	          status SERVING); 503 before that, while draining, stopped
//
// and nothing else, so it may bind the pod IP that the kubelet probes
// while the status page, /metrics and pprof stay on loopback.
//
// # Design choices, and why
//
//   - admin does not import core/stack: it reads a running process
//     through the small Source interface (a cheap Health for /healthz and
//     a fuller Snapshot for the page), which the stack implements. The
//     stack can then start the listener without an import cycle, and
//     tests or other programs can feed it anything.
//   - The status page is server-rendered with html/template (contextual
//     escaping of plugin paths, registry metadata and error texts) and a
//     small inline stylesheet: no JavaScript, nothing fetched from
//     elsewhere, so it renders in a locked-down browser or curl alike.
//     It refreshes itself with a meta tag every 10 s.
//   - pprof handlers are mounted on this listener's own mux, never on
//     http.DefaultServeMux, so linking admin exposes nothing by itself.
//   - Probes are a listener of their own rather than a path of the admin
//     listener: binding the admin listener to the pod IP for the kubelet
//     would expose the status page (plugin paths, registry contents) and
//     pprof to the whole cluster network. Liveness and readiness differ
//     on purpose: a draining process is not ready (stop sending) but is
//     live (do not kill it mid-drain).
//   - The admin listener's /healthz (kept as it was: readiness, for load
//     balancers) fails closed: a server that is starting, draining or
//     stopped makes the process unhealthy, so a load balancer stops
//     sending before the drain, not after.
package admin
