// Package nacos is Kite's Nacos registry (catalog name "nacos"): a small
// HTTP client for the Nacos naming Open API v1, served by Nacos 1.x and
// 2.x, without the gRPC-based SDK and its dependencies.
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
