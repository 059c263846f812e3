package bridge

import (
	"io"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"

	_ "github.com/kiterpc/kite/plugins/filter-auth"
	logfilter "github.com/kiterpc/kite/plugins/filter-log"
	_ "github.com/kiterpc/kite/plugins/filter-metrics"
	_ "github.com/kiterpc/kite/plugins/filter-ratelimit"
	_ "github.com/kiterpc/kite/plugins/filter-recover"
	_ "github.com/kiterpc/kite/plugins/filter-tracing"
)

// filterCase is a filter plugin, a configuration, and what the filter
// suite needs to know to drive it.
type filterCase struct {
	name, cfg string
	suite     spitest.FilterSuite // Filter is set per mode
}

func filterCases() []filterCase {
	const token = "bridge-s3cret"
	return []filterCase{
		{name: "log", cfg: `{"level":"debug","slow":"1s"}`},
		{name: "recover", cfg: `{"stack":false}`},
		{name: "metrics", cfg: `{"namespace":"kite_bridge"}`},
		{name: "tracing", cfg: `{}`},
		{
			// One block for both sides: the client side sends the token,
			// the server side accepts it; a server-side call without one
			// is refused.
			name: "auth", cfg: `{"token":"` + token + `","tokens":["` + token + `"]}`,
			suite: spitest.FilterSuite{
				Prepare: func(call *spi.Call) {
					if call.Side == spi.ServerSide {
						call.Meta.Set(spi.MetaAuthorization, "Bearer "+token)
					}
				},
				Reject:     func(call *spi.Call) { call.Side = spi.ServerSide },
				RejectCode: spi.Unauthenticated,
			},
		},
		{
			// The suite's own methods are exempt (the filter has nothing
			// to do with them); another method has a bucket of one call
			// refilling every 1000 s: its second call is refused.
			name: "ratelimit", cfg: `{"rate":0.001,"burst":1,"per":"method","exempt":["Spitest.*"]}`,
			suite: spitest.FilterSuite{
				Reject:     func(call *spi.Call) { call.Method = "Limited.Call" },
				RejectCode: spi.ResourceExhausted,
			},
		},
	}
}

func TestFilters(t *testing.T) {
	for _, c := range filterCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Run("CompiledIn", func(t *testing.T) {
				s := c.suite
				s.Filter = compiled[spi.Filter](t, spi.KindFilter, c.name, c.cfg)
				if lf, ok := s.Filter.(*logfilter.Filter); ok {
					// Log everything, formatting included, but not into
					// the test's output (plugins log to the host's logger).
					lf.Logger = hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Trace})
				}
				s.Run(t)
			})
			t.Run("Bridged", func(t *testing.T) {
				e := load(t, "kite-filter-"+c.name, spi.KindFilter, c.name)
				s := c.suite
				s.Filter = build[spi.Filter](t, e, c.cfg)
				s.Run(t)
			})
		})
	}
}
