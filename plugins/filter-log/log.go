// Package logfilter is the "log" filter: one structured hclog line per
// call with side, method, peer, code and duration. Successful calls log at
// the configured level (default debug) and failures at warn, so
// production logs show problems without drowning in traffic.
package logfilter

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/spi"
)

// Filter logs calls.
type Filter struct {
	Logger hclog.Logger
	// Level for successful calls; failures log at Warn (or Level if higher).
	Level hclog.Level
	// Slow, if positive, logs successful calls slower than it at Info.
	Slow time.Duration
}

type config struct {
	Level string `json:"level"`
	Slow  string `json:"slow"`
	Name  string `json:"name"`
}

// New builds the filter from its kite.hcl block.
func New(cfg spi.Config) (any, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	f := &Filter{Level: hclog.Debug}
	if c.Level != "" {
		f.Level = hclog.LevelFromString(c.Level)
		if f.Level == hclog.NoLevel {
			return nil, fmt.Errorf("level %q: want trace, debug, info, warn or error", c.Level)
		}
	}
	if c.Slow != "" {
		d, err := time.ParseDuration(c.Slow)
		if err != nil {
			return nil, fmt.Errorf("slow: %w", err)
		}
		f.Slow = d
	}
	name := "rpc"
	if c.Name != "" {
		name = c.Name
	}
	f.Logger = hclog.Default().Named(name)
	return f, nil
}

// MetadataOnly implements spi.MetadataFilter: it logs method, peer, code and latency, never the
// request, so it does not hold back authentication before decoding.
func (*Filter) MetadataOnly() {}

// Wrap implements spi.Filter.
func (f *Filter) Wrap(next spi.Invoker) spi.Invoker {
	log := f.Logger
	if log == nil {
		log = hclog.Default().Named("rpc")
	}
	return func(ctx context.Context, call *spi.Call) error {
		start := time.Now()
		err := next(ctx, call)
		d := time.Since(start)
		level := f.Level
		if err != nil && level < hclog.Warn {
			level = hclog.Warn
		} else if err == nil && f.Slow > 0 && d > f.Slow && level < hclog.Info {
			level = hclog.Info
		}
		if log.GetLevel() > level {
			return err
		}
		args := []any{"side", call.Side.String(), "method", call.Method, "peer", call.Peer,
			"code", spi.CodeOf(err).String(), "duration", d}
		if call.OneWay {
			args = append(args, "oneway", true)
		}
		// The W3C trace id ties the client's and the server's lines of
		// one request together (and to its spans when tracing is on).
		if tid := traceID(call.Meta.Get(spi.MetaTraceParent)); tid != "" {
			args = append(args, "trace_id", tid)
		}
		if err != nil {
			args = append(args, "error", err.Error())
		}
		log.Log(level, "call", args...)
		return err
	}
}

func init() {
	spi.Register(spi.Entry{
		Kind: spi.KindFilter, Name: "log", Version: "1.0.0",
		Doc: "one structured hclog line per call",
		Schema: spi.Schema{
			{Name: "level", Type: spi.TypeString, Doc: "level of successful calls (default debug)"},
			{Name: "slow", Type: spi.TypeDuration, Doc: "log successful calls slower than this at info"},
			{Name: "name", Type: spi.TypeString, Doc: "logger name (default rpc)"},
		},
		New: New,
	})
}

// traceID returns the trace-id field of a W3C traceparent header
// ("00-<trace-id>-<parent-id>-<flags>"), or "".
func traceID(traceparent string) string {
	if len(traceparent) < 55 || traceparent[2] != '-' || traceparent[35] != '-' {
		return ""
	}
	return traceparent[3:35]
}
