// Package goheader is the Python "header" filter (sdk/python/examples/
// header_filter.py) written in Go, so its cost compiled in, out of
// process in Go, and out of process in Python can be compared call for
// call (tests/polyglot's benchmarks).
package goheader

import (
	"context"
	"strconv"
	"strings"
	"sync"

	"github.com/kiterpc/kite/spi"
)

// Entry is the filter's catalog entry, with the Python plugin's schema.
var Entry = spi.Entry{
	Kind: spi.KindFilter, Name: "header", Version: "1.0.0",
	Doc: "Adds a metadata header on the client side and requires it on the server side; counts calls.",
	Schema: spi.Schema{
		{Name: "header", Type: spi.TypeString, Required: true},
		{Name: "value", Type: spi.TypeString, Required: true},
		{Name: "exempt", Type: spi.TypeStringList},
		{Name: "count_trailer", Type: spi.TypeString},
	},
	New: newFilter,
}

type config struct {
	Header       string   `json:"header"`
	Value        string   `json:"value"`
	Exempt       []string `json:"exempt"`
	CountTrailer string   `json:"count_trailer"`
}

type filter struct {
	config
	mu     sync.Mutex
	counts map[string]int
}

func newFilter(cfg spi.Config) (any, error) {
	f := &filter{counts: map[string]int{}}
	if err := cfg.Decode(&f.config); err != nil {
		return nil, err
	}
	if f.Header == "" || f.Value == "" {
		return nil, spi.Errorf(spi.InvalidArgument, "header and value must be non-empty")
	}
	return f, nil
}

func (f *filter) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		if call.Side == spi.ClientSide {
			if _, ok := call.Meta.Lookup(f.Header); !ok {
				call.Meta.Set(f.Header, f.Value)
			}
		} else if !f.exempt(call.Method) {
			got, ok := call.Meta.Lookup(f.Header)
			if !ok {
				return spi.Errorf(spi.Unauthenticated, "missing %s header", f.Header)
			}
			if got != f.Value {
				return spi.Errorf(spi.PermissionDenied, "%s %q is not allowed", f.Header, got)
			}
		}
		f.mu.Lock()
		f.counts[call.Method]++
		n := f.counts[call.Method]
		f.mu.Unlock()
		err := next(ctx, call)
		if f.CountTrailer != "" && call.Trailer != nil {
			call.Trailer.Set(f.CountTrailer, strconv.Itoa(n))
		}
		return err
	}
}

func (f *filter) exempt(method string) bool {
	for _, p := range f.Exempt {
		if strings.HasPrefix(method, p) {
			return true
		}
	}
	return false
}
