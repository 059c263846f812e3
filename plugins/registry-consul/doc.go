// Package consul is Kite's Consul registry (catalog name "consul"), on
// HashiCorp's github.com/hashicorp/consul/api client.
//
// Register adds an agent service (PUT /v1/agent/service/register) whose
// id is "kite-<service>-<addr>", with a TTL check that starts passing and
// DeregisterCriticalServiceAfter set, so a crashed process's instance
// turns critical after check_ttl (clients stop seeing it) and is removed
// after deregister_after. The registry renews every check every third of
// check_ttl and registers again when the agent no longer knows a check.
// Deregister and Close remove the service.
//
// Resolve reads GET /v1/health/service/<name>?passing; Watch follows the
// same query as a blocking query (index + wait), so changes arrive as soon
// as Consul applies them. While the agent is unreachable, watchers keep
// their last snapshot and Resolve answers from the last list it saw.
//
// Mapping: Version, Zone and Kite's exact weight are service Meta
// "kite-version", "kite-zone", "kite-weight"; Tags are Consul tags (order
// kept); Weights.Passing is the effective weight clamped to 1..65535.
// Metadata keys must satisfy Consul's rules (letters, digits, '_', '-',
// at most 128 characters, not "consul-"), values at most 512 bytes, at
// most 64 pairs: Register checks them and fails with InvalidArgument.
//
// The consultest subpackage is an in-process double of the agent API
// used by the tests; see README.md for what was tested how.
package consul
