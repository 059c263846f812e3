# swap-registry, step 1: the embedded local registry (a directory shared
# by the processes of one machine). Nothing to run besides the binaries.

registry "local" "main" {
  # KITE_LOCAL_DIR lets the test isolate its registry; empty means the
  # default ($XDG_RUNTIME_DIR/kite, else $TMPDIR/kite-registry-$UID).
  dir           = env("KITE_LOCAL_DIR", "")
  poll_interval = "50ms"
}

server "echo" {
  # Port 0: the kernel picks a free port, so the client can only find
  # the server through the registry.
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
