// Package filterbench is the filter kitebench's filters command measures
// compiled in and out of process: an API-key check, the typical
// metadata-only filter. The same code runs both ways; "filter-plugin"
// serves it from the kitebench binary itself.
package filterbench

import (
	"context"
	"crypto/subtle"

	"github.com/kiterpc/kite/spi"
)

// Header is the metadata key the key travels in; Key the configured key.
const (
	Header = "x-api-key"
	Key    = "bench-key-0123456789"
)

// Config of the filter: BeforeOnly makes it an spi.BeforeOnlyFilter
// (one exchange per call out of process); otherwise it also sets a
// trailer after the call, which needs the call's result.
type Config struct {
	Key        string `json:"key"`
	BeforeOnly bool   `json:"before_only"`
}

// Entry is the filter's catalog entry ("benchkey").
var Entry = spi.Entry{
	Kind: spi.KindFilter, Name: "benchkey", Version: "1.0.0",
	Doc: "refuses server calls without the API key; stamps x-checked",
	Schema: spi.Schema{
		{Name: "key", Type: spi.TypeString, Required: true},
		{Name: "before_only", Type: spi.TypeBool},
	},
	New: func(cfg spi.Config) (any, error) {
		var c Config
		if err := cfg.Decode(&c); err != nil {
			return nil, err
		}
		f := &Filter{key: []byte(c.Key)}
		if c.BeforeOnly {
			return &BeforeOnly{f}, nil
		}
		return f, nil
	},
}

// Filter checks the key on the server side and stamps the request; after
// the call it sets "x-filter" in the trailer.
type Filter struct{ key []byte }

func (f *Filter) check(call *spi.Call) error {
	if call.Side != spi.ServerSide {
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(call.Meta.Get(Header)), f.key) != 1 {
		return spi.Errorf(spi.Unauthenticated, "%s: missing or wrong %s", call.Method, Header)
	}
	call.Meta.Set("x-checked", "1")
	return nil
}

// Wrap implements spi.Filter.
func (f *Filter) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		if err := f.check(call); err != nil {
			return err
		}
		err := next(ctx, call)
		if call.Trailer != nil {
			call.Trailer.Set("x-filter", spi.CodeOf(err).String())
		}
		return err
	}
}

// MetadataOnly implements spi.MetadataFilter: the server runs it before
// decoding the body, compiled in as out of process.
func (*Filter) MetadataOnly() {}

// BeforeOnly is the filter without its after part.
type BeforeOnly struct{ f *Filter }

// Wrap implements spi.Filter.
func (b *BeforeOnly) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		if err := b.f.check(call); err != nil {
			return err
		}
		return next(ctx, call)
	}
}

// MetadataOnly implements spi.MetadataFilter.
func (*BeforeOnly) MetadataOnly() {}

// BeforeOnly implements spi.BeforeOnlyFilter.
func (*BeforeOnly) BeforeOnly() {}
