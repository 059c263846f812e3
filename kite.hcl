# Kite demo stack: an echo server and its client on the embedded local
# registry (files in a directory shared by every process on this machine).
# `make demo` runs examples/echo, whose server and client are built from the
# blocks below: edit them and run it again. `kite check` validates this
# file; docs/CONFIG.md lists every attribute.

registry "local" "local" {}

server "echo" {
  listen   = "127.0.0.1:9000"
  registry = "local"
  codec    = "json"
  filters  = ["recover", "log"]

  limits {
    max_concurrency = 10000
    max_frame       = "4MiB"
    idle_timeout    = "5m"
  }
}

client "echo" {
  service  = "echo"
  registry = "local"
  balancer = "weighted"
  codec    = "json"
  timeout  = "500ms"
  filters  = ["recover", "log"]

  retry {
    max_attempts = 3
    backoff      = "10ms..1s"
    budget       = 0.1
  }

  pool {
    conns_per_endpoint = 2
    idle_timeout       = "60s"
  }

  method "Echo.Say" {
    idempotent = true
  }
}
