package metricsfilter_test

import (
	"context"
	"fmt"

	metricsfilter "github.com/kiterpc/kite/plugins/filter-metrics"
	"github.com/kiterpc/kite/spi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A metrics filter around a handler; the registry is what an admin
// endpoint would serve (see Handler).
func ExampleNewFilter() {
	reg := prometheus.NewRegistry()
	f, err := metricsfilter.NewFilter(metricsfilter.Options{Registerer: reg})
	if err != nil {
		panic(err)
	}
	handler := func(ctx context.Context, c *spi.Call) error {
		if c.Request == nil {
			return spi.Errorf(spi.InvalidArgument, "empty request")
		}
		return nil
	}
	inv := f.Wrap(handler)
	for _, req := range []any{"a", "b", nil} {
		_ = inv(context.Background(), &spi.Call{Side: spi.ServerSide, Method: "Users.Get", Request: req})
	}
	n, _ := testutil.GatherAndCount(reg, "kite_rpc_calls_total")
	fmt.Println("series:", n)
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "kite_rpc_calls_total" {
			for _, m := range mf.GetMetric() {
				fmt.Println(m.GetLabel()[0].GetValue(), m.GetCounter().GetValue())
			}
		}
	}
	// Output:
	// series: 2
	// InvalidArgument 1
	// OK 2
}
