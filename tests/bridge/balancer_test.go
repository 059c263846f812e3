package bridge

import (
	"context"
	"strconv"
	"testing"

	consistenthash "github.com/kiterpc/kite/plugins/lb-hash"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"

	_ "github.com/kiterpc/kite/plugins/lb-p2c"
	_ "github.com/kiterpc/kite/plugins/lb-random"
	_ "github.com/kiterpc/kite/plugins/lb-roundrobin"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
)

func TestBalancers(t *testing.T) {
	for _, c := range []struct{ bin, name string }{
		{"kite-balancer-weighted", "weighted"},
		{"kite-balancer-round-robin", "round_robin"},
		{"kite-balancer-random", "random"},
		{"kite-balancer-p2c", "p2c"},
		{"kite-balancer-consistent-hash", consistenthash.Name},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := load(t, c.bin, spi.KindBalancer, c.name)
			spitest.TestBalancer(t, build[spi.Balancer](t, e, `{}`))
		})
	}
}

// TestConsistentHashAffinity checks that consistent_hash keeps key
// affinity out of process: every key goes to the instance the compiled-in
// picker chooses, also when the key's instance is excluded (a retry) and
// after the list changes.
func TestConsistentHashAffinity(t *testing.T) {
	e := load(t, "kite-balancer-consistent-hash", spi.KindBalancer, consistenthash.Name)
	for _, cfg := range []string{`{}`, `{"replicas":40}`} {
		t.Run(cfg, func(t *testing.T) {
			bridged := build[spi.Balancer](t, e, cfg)
			local := compiled[spi.Balancer](t, spi.KindBalancer, consistenthash.Name, cfg)
			lists := [][]spi.Instance{hashInstances(0, 1, 50, 100, 300, 100, 7), hashInstances(100, 100, 100, 100), hashInstances(100)}
			lists = append(lists, lists[0][1:]) // one instance gone
			ctx := context.Background()
			for li, ins := range lists {
				bp, lp := bridged.Build(ins), local.Build(ins)
				excludes := [][]string{nil, {ins[0].Addr}}
				if len(ins) > 2 {
					excludes = append(excludes, []string{ins[1].Addr, ins[2].Addr})
				}
				for _, ex := range excludes {
					for k := range 2000 {
						info := spi.PickInfo{Method: "User.Get", Key: "user-" + strconv.Itoa(k), Exclude: ex}
						got, err := bp.Pick(ctx, info)
						if err != nil {
							t.Fatal(err)
						}
						want, err := lp.Pick(ctx, info)
						if err != nil {
							t.Fatal(err)
						}
						if got.Instance.Addr != want.Instance.Addr {
							t.Fatalf("list %d, key %q, exclude %v: bridged picks %s, compiled in %s",
								li, info.Key, ex, got.Instance.Addr, want.Instance.Addr)
						}
					}
				}
			}
		})
	}
}

func hashInstances(weights ...int) []spi.Instance {
	out := make([]spi.Instance, len(weights))
	for i, w := range weights {
		out[i] = spi.Instance{Service: "user", Addr: "10.0.0." + strconv.Itoa(i+1) + ":9000", Weight: w}
	}
	return out
}
