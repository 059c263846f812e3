# swap-registry, step 4: Consul (an agent service with a TTL check,
# watched with blocking queries). Only the registry block differs.

registry "consul" "main" {
  address   = env("KITE_CONSUL_ADDR", "127.0.0.1:8500")
  token     = env("KITE_CONSUL_TOKEN", "")
  check_ttl = "10s"
}

server "echo" {
  listen       = "127.0.0.1:0"
  registry     = "main"
  service_name = env("KITE_SWAP_SERVICE", "swap-echo")
  version      = "v1"
  shutdown_timeout = "5s"
}

client "echo" {
  service  = env("KITE_SWAP_SERVICE", "swap-echo")
  registry = "main"
  balancer = "weighted"
  timeout  = "2s"
}
