package spitest_test

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// refFilter is a correct filter that does something on every call, like
// real ones: it stamps a metadata key of its own, refuses calls without
// the "x-ref-token" key on the server side, and (with fault set) breaks
// in one of the ways the suite must notice.
type refFilter struct{ fault string }

func (f *refFilter) Wrap(next spi.Invoker) spi.Invoker {
	var calls atomic.Int64
	return func(ctx context.Context, call *spi.Call) error {
		calls.Add(1)
		call.Meta.Set("x-ref-seen", "1")
		if call.Side == spi.ServerSide && call.Meta.Get("x-ref-token") != "ok" {
			if f.fault == "plain-refusal" {
				return context.Canceled
			}
			return spi.Errorf(spi.Unauthenticated, "no token")
		}
		switch f.fault {
		case "swallow": // turns every failure into success
			_ = next(ctx, call)
			return nil
		case "recode": // reports every failure as Internal
			if err := next(ctx, call); err != nil {
				return spi.Errorf(spi.Internal, "failed")
			}
			return nil
		case "dropmeta": // strips the caller's metadata
			call.Meta.Delete("x-spitest-b")
		case "twice": // retries blindly
			_ = next(ctx, call)
		case "newctx": // loses the caller's context
			ctx = context.Background()
		case "before-only-after": // claims BeforeOnly, acts after next
			err := next(ctx, call)
			call.Trailer.Set("x-ref-after", "1")
			return err
		}
		return next(ctx, call)
	}
}

// beforeOnlyRef is refFilter marked spi.BeforeOnlyFilter.
type beforeOnlyRef struct{ refFilter }

func (*beforeOnlyRef) BeforeOnly() {}

func refSuite(fault string) spitest.FilterSuite {
	var f spi.Filter = &refFilter{fault: fault}
	if strings.HasPrefix(fault, "before-only") {
		f = &beforeOnlyRef{refFilter{fault: fault}}
	}
	return spitest.FilterSuite{
		Filter:     f,
		Prepare:    func(call *spi.Call) { call.Meta.Set("x-ref-token", "ok") },
		Reject:     func(call *spi.Call) { call.Side = spi.ServerSide },
		RejectCode: spi.Unauthenticated,
	}
}

func TestFilterSuiteOnReference(t *testing.T) {
	refSuite("").Run(t)
	t.Run("before-only", func(t *testing.T) { refSuite("before-only").Run(t) })
}

// Filters that have nothing to do pass TestFilter as they are.
func TestFilterSuiteOnPassThrough(t *testing.T) {
	spitest.TestFilter(t, spi.FilterFunc(func(next spi.Invoker) spi.Invoker { return next }))
}

// A filter that refuses only after a burst (a rate limiter) passes too.
func TestFilterSuiteRefusalAfterBurst(t *testing.T) {
	var n atomic.Int32
	spitest.FilterSuite{
		Filter: spi.FilterFunc(func(next spi.Invoker) spi.Invoker {
			return func(ctx context.Context, call *spi.Call) error {
				if strings.HasSuffix(call.Method, ".Reject") && n.Add(1) > 5 {
					return spi.Errorf(spi.ResourceExhausted, "over the limit")
				}
				return next(ctx, call)
			}
		}),
		Reject:     func(*spi.Call) {},
		RejectCode: spi.ResourceExhausted,
	}.Run(t)
}

// TestFilterSuiteCatchesFaults runs the suite against each broken filter
// in a child process and checks it fails for the right reason.
func TestFilterSuiteCatchesFaults(t *testing.T) {
	if fault := os.Getenv("KITE_SPITEST_FILTER_FAULT"); fault != "" {
		refSuite(fault).Run(t)
		return
	}
	if testing.Short() {
		t.Skip("spawns child test processes")
	}
	for fault, want := range map[string]string{
		"swallow":           "the caller got <nil>",
		"recode":            "(code Internal)",
		"dropmeta":          `metadata "x-spitest-b"="beta with spaces" set before the filter reached next`,
		"twice":             "next ran 2 times, want once",
		"newctx":            "next's context lost the caller's values",
		"plain-refusal":     "want an *spi.Error",
		"before-only-after": "a before-only filter changed the trailer next left",
	} {
		t.Run(fault, func(t *testing.T) {
			out := runChild(t, "TestFilterSuiteCatchesFaults", "KITE_SPITEST_FILTER_FAULT="+fault)
			if !strings.Contains(out, want) {
				t.Errorf("suite output for fault %q lacks %q:\n%s", fault, want, out)
			}
		})
	}
}
