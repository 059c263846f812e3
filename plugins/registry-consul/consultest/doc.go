// Package consultest is an in-process test double of the parts of the
// Consul agent HTTP API that Kite's Consul registry uses, for tests that
// run without a Consul agent.
//
// It serves PUT /v1/agent/service/register, PUT
// /v1/agent/service/deregister/{id}, PUT /v1/agent/check/update/{id}
// (and the older /v1/agent/check/pass|warn|fail/{id}), GET
// /v1/agent/services, GET /v1/health/service/{name} and GET
// /v1/status/leader, written from Consul v1.22.7's agent/agent_endpoint.go,
// agent/health_endpoint.go and agent/structs validation:
//
//   - status codes and bodies: 400 "Missing service name", "Invalid
//     service address", "Invalid Weights: Passing must be greater than
//     0", "Invalid Service Meta: Key contains invalid characters" (and the
//     other metadata limits: 64 pairs, keys of at most 128 characters
//     matching [a-zA-Z0-9_-]+ without the "consul-" prefix, values of at
//     most 512), "Request decode failed: ..."; 404 "Unknown service ID"
//     on deregistering an unknown id and "Unknown check ID" on updating
//     an unknown check; 403 "ACL not found" / "Permission denied" when a
//     token is configured; 405 for a wrong method;
//   - blocking queries: every answer carries X-Consul-Index,
//     X-Consul-KnownLeader and X-Consul-LastContact; a health query with
//     ?index=N blocks while the service's index is still N (or lower)
//     and returns at the first change or after ?wait (default 5m, at most
//     10m) plus up to wait/16 of jitter, as a Consul server does;
//   - ?passing keeps only entries whose checks (node and service) all
//     pass; a TTL check turns critical ("TTL expired") when not updated
//     within its TTL, and a service whose check stays critical for
//     DeregisterCriticalServiceAfter is removed (Consul's reaper runs
//     every 30 s; the double removes it on time);
//   - an index moves on register, deregister and check status changes,
//     not on a TTL update that leaves the status as it was (the agent
//     syncs output-only changes every 5 minutes).
//
// SetFault makes the double answer every request with a given status and
// body (garbage, a 500), SetDown drops every connection, and Restart
// forgets all services and checks like an agent started afresh in -dev
// mode.
package consultest
