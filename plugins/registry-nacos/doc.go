// Package nacos is Kite's Nacos registry (catalog name "nacos"): a small
// HTTP client for the Nacos naming Open API v1, served by Nacos 1.x, 2.x
// and 3.x, and for the Nacos 3 client API (/nacos/v3/client/ns/instance),
// without the gRPC-based SDK and its dependencies. With api unset it
// speaks v1 and switches to v3 for good when a server answers 410 Gone
// (Nacos 3 with nacos.core.api.compatibility.client.enabled=false).
//
// Limits Nacos enforces with a 400 are checked at Register (weight at most
// 10000 after the /100 conversion, metadata keys and values at most 1024
// UTF-16 units in total with Kite's own keys, service-name pattern) and in
// New (cluster and group patterns), so they fail with a clear
// InvalidArgument or configuration error before any request.
//
// Register posts an ephemeral instance and keeps it alive with heartbeats
// (PUT /nacos/v1/ns/instance/beat) at the interval the server asks for,
// sending light beats when allowed and registering again when the server
// answers 20404 (it lost the instance). Resolve and Watch read GET
// /nacos/v1/ns/instance/list and keep only healthy, enabled instances;
// Watch polls at the server's cacheMillis (or poll_interval) and delivers
// a snapshot only when the converted set changes. While Nacos is
// unreachable, watchers keep their last snapshot and Resolve answers from
// the last list it saw.
//
// Weight: Nacos weights are doubles where 1.0 is normal; Kite's are
// integers where 100 is normal, so the Nacos weight is weight/100 and the
// exact integer is kept in metadata "kite.weight". Version, zone and tags
// are metadata "version", "zone" and "tags" (comma-separated).
//
// The nacostest subpackage is an in-process double of the server used by
// the tests; see README.md for what was tested how.
package nacos
