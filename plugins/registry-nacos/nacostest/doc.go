// Package nacostest is an in-process test double of the Nacos naming
// server's HTTP Open API (v1), for testing clients without a Nacos.
//
// It serves, under /nacos: POST/PUT/DELETE /v1/ns/instance (register,
// update, deregister), PUT /v1/ns/instance/beat, GET /v1/ns/instance/list
// (also /v1/ns/instances) and, when credentials are set, POST
// /v1/auth/login (also /v1/auth/users/login). Parameters, defaults,
// status codes and JSON shapes follow Nacos 1.4's InstanceController:
// missing parameters give 400 with "caused: Param 'x' is required.;",
// service names are grouped as "GROUP@@service", instance ids are
// "ip#port#cluster#GROUP@@service", unknown services list as empty,
// disabled instances are never listed, and a beat for an unknown instance
// answers code 20404 unless it carries the full beat JSON, from which the
// instance is registered again.
//
// Later behaviour it follows instead of 1.4's: the protect threshold
// (default 0) is computed as Nacos 2.4's ServiceUtil does, over the list
// the healthyOnly filter leaves, so it returns all instances as healthy
// only when too few of those are healthy (never with healthyOnly=true);
// the 400 limits of Nacos 2.3-3.0's ParamCheckRule (cluster
// [0-9a-zA-Z_-]{1,64}, metadata keys+values at most 1024 UTF-16 units,
// weight at most 10000). It also serves the Nacos 3.0 client API
// (InstanceOpenApiController): POST/DELETE /v3/client/ns/instance
// (heartBeat=true renews, code 21003 for an unknown instance), GET
// /v3/client/ns/instance/list (every enabled instance, threshold over
// all) with Result {code, message, data} answers, POST
// /v3/auth/user/login; and with Options.V1Disabled every /v1/ns call
// answers 410 Gone, as Nacos 3 does when
// nacos.core.api.compatibility.client.enabled=false (the 410 body is
// the double's own wording).
//
// Ephemeral instances turn unhealthy after UnhealthyAfter without a beat
// (Nacos: 15 s) and are removed after DeleteAfter (Nacos: 30 s); both are
// options so tests run fast. Health is evaluated on every request, so the
// double runs no goroutine of its own besides the HTTP server.
package nacostest
