// Package eureka is Kite's Eureka registry (catalog name "eureka"): a
// small client of the Eureka REST API (the /eureka/apps resources served
// by Netflix Eureka 1.x and 2.x and Spring Cloud Netflix's server), with
// no dependency beyond the standard library.
//
// Register posts the instance (POST /apps/{APP}, status UP, leaseInfo
// from renewal_interval and lease_duration) and renews its lease (PUT
// /apps/{APP}/{id}) every renewal_interval; a 404 on renewal (the server
// evicted or never replicated it) registers it again. Deregister and Close
// cancel the lease (DELETE). SetStatus sets or removes a status override
// (OUT_OF_SERVICE takes an instance out of rotation while it keeps
// renewing).
//
// Resolve reads GET /apps/{APP}. Watches share one cache per registry,
// kept like the Eureka client keeps its own: a full fetch (GET /apps),
// then a delta fetch (GET /apps/delta) every poll_interval applied by
// actionType, and a full fetch again when the reconcile hash code
// (apps__hashcode) disagrees. Only instances with status UP are returned.
//
// Mapping: the application is the service name upper-cased (Eureka's
// rule; the exact name is kept in metadata "kite.service" and instances
// of another service folding to the same application are ignored); the
// instance id is the address; Version, Zone, Tags and Kite's weight are
// metadata "kite.version", "kite.zone", "kite.tags" (comma-separated),
// "kite.weight".
//
// The eurekatest subpackage is an in-process double of the server used by
// the tests; see README.md for what was tested how.
package eureka
