# A kite.hcl with the usual mistakes, one of each kind.
registry "zk" "main" {
  servers = ["127.0.0.1:2181"]
  sesion_timeout = "10s"
}

server "user" {
  listen   = "127.0.0.1:9000"
  registry = "mian"
  filters  = ["recover", "lgo"]
  limits {
    max_frame = "4MB!"
  }
}

client "user" {
  registry = "main"
  timeout  = "500"
  retry {
    max_attempts = "three"
  }
}
