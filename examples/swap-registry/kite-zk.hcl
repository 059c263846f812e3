# swap-registry, step 2: ZooKeeper. Only the registry block differs from
# kite-local.hcl; the binaries are the same.

registry "zk" "main" {
  servers         = [env("KITE_ZK_ADDR")]
  session_timeout = "10s"
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
