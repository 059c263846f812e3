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
// disabled instances are never listed, the protect threshold (default 0)
// returns all instances as healthy when too few are healthy, and a beat
// for an unknown instance answers code 20404 unless it carries the full
// beat JSON, from which the instance is registered again.
//
// Ephemeral instances turn unhealthy after UnhealthyAfter without a beat
// (Nacos: 15 s) and are removed after DeleteAfter (Nacos: 30 s); both are
// options so tests run fast. Health is evaluated on every request, so the
// double runs no goroutine of its own besides the HTTP server.
package nacostest
