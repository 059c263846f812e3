package main

// The standard plugin set: compiled-in implementations register
// themselves into spi.Default from init when linked here. Add a line per
// plugin package as it lands.
import (
	_ "github.com/kiterpc/kite/plugins/codec-hessian"
	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/codec-proto"
	_ "github.com/kiterpc/kite/plugins/compress-gzip"
	_ "github.com/kiterpc/kite/plugins/compress-s2"
	_ "github.com/kiterpc/kite/plugins/compress-snappy"
	_ "github.com/kiterpc/kite/plugins/compress-zstd"
	_ "github.com/kiterpc/kite/plugins/filter-auth"
	_ "github.com/kiterpc/kite/plugins/filter-jwt"
	_ "github.com/kiterpc/kite/plugins/filter-log"
	_ "github.com/kiterpc/kite/plugins/filter-metrics"
	_ "github.com/kiterpc/kite/plugins/filter-ratelimit"
	_ "github.com/kiterpc/kite/plugins/filter-recover"
	_ "github.com/kiterpc/kite/plugins/filter-tracing"
	_ "github.com/kiterpc/kite/plugins/filter-validate"
	_ "github.com/kiterpc/kite/plugins/lb-hash"
	_ "github.com/kiterpc/kite/plugins/lb-p2c"
	_ "github.com/kiterpc/kite/plugins/lb-random"
	_ "github.com/kiterpc/kite/plugins/lb-roundrobin"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
	_ "github.com/kiterpc/kite/plugins/registry-consul"
	_ "github.com/kiterpc/kite/plugins/registry-etcd"
	_ "github.com/kiterpc/kite/plugins/registry-eureka"
	_ "github.com/kiterpc/kite/plugins/registry-local"
	_ "github.com/kiterpc/kite/plugins/registry-nacos"
	_ "github.com/kiterpc/kite/plugins/registry-static"
	_ "github.com/kiterpc/kite/plugins/registry-zk"
)
