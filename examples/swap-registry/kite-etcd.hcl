# swap-registry, step 3: etcd (leases). Only the registry block differs.

registry "etcd" "main" {
  endpoints = [env("KITE_ETCD_ADDR")]
  ttl       = "10s"
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
