package spitest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiterpc/kite/spi"
)

// TestFilter runs the conformance suite for spi.Filter against f with
// calls the filter lets through as they are, on both sides. Filters that
// need something of a call to let it through (a server-side auth filter
// wants a token), or that can refuse calls, use FilterSuite.
//
// See FilterSuite for what is checked.
func TestFilter(t *testing.T, f spi.Filter) {
	t.Helper()
	FilterSuite{Filter: f}.Run(t)
}

// FilterSuite is TestFilter with every knob exposed.
//
// The contract checked, for a call the filter lets through:
//   - next runs exactly once, with the call's method, side, peer, one-way
//     and stream flags as the caller set them, the caller's Request value
//     (the same pointer), and a context that carries the caller's values
//     and a deadline no later than the caller's; a Response next fills
//     reaches the caller. Unary, one-way and stream-opening calls.
//   - Metadata the caller set before the filter reaches next unchanged
//     and is still on the call afterwards (a filter may add keys, never
//     drop or change the caller's); a trailer next sets reaches the
//     caller.
//   - A call that arrives with no metadata at all (an empty Meta, as the
//     runtime passes when the caller set none: compiled in as out of
//     process, Meta is never nil) does not crash the filter: it either
//     reaches next or is refused with an *spi.Error.
//   - next's error reaches the caller with its code and message; a
//     success stays a success. Context errors and plain errors keep their
//     codes (DeadlineExceeded, Canceled, Unknown).
//   - Wrap is called once and its Invoker serves many calls, concurrently:
//     each caller gets its own call's metadata, trailer and result (run
//     the suite with -race).
//
// With Reject set, for calls the filter refuses:
//   - The filter returns without calling next, and the error is an
//     *spi.Error (errors.As) with RejectCode; afterwards it still lets
//     through the calls it should.
type FilterSuite struct {
	Filter spi.Filter
	// Sides are the sides the filter is tried on; nil means both.
	Sides []spi.Side
	// Prepare, when set, readies a call the filter must let through. The
	// suite has set the call's Side, Method (in service "Spitest"), Peer,
	// flags and metadata of its own (keys starting "x-spitest-");
	// Prepare adds what the filter needs, e.g. a valid token.
	Prepare func(call *spi.Call)
	// Reject, when set, readies a call the filter must refuse (short-
	// circuit) with RejectCode. The suite makes such calls until one is
	// refused, at most 1000, so a rate limiter may first spend its burst.
	Reject     func(call *spi.Call)
	RejectCode spi.Code
}

// Metadata keys and values the suite sets; filters leave them alone.
const (
	filterMetaA     = "x-spitest-a"
	filterMetaB     = "x-spitest-b"
	filterMetaID    = "x-spitest-id"
	filterTrailer   = "x-spitest-trailer"
	filterTestPeer  = "127.0.0.1:43210"
	filterServiceNS = "Spitest."
)

type filterCtxKey struct{}

// filterRequest and filterResponse are the values a call carries; next
// fills the response, as a handler or a client transport would.
type filterRequest struct{ N int }
type filterResponse struct{ Echo int }

// Run runs the suite as subtests of t.
func (s FilterSuite) Run(t *testing.T) {
	t.Helper()
	if s.Filter == nil {
		t.Fatal("spitest: FilterSuite needs a Filter")
	}
	if s.Reject != nil && s.RejectCode == spi.OK {
		t.Fatal("spitest: FilterSuite.Reject needs a RejectCode other than OK")
	}
	sides := s.Sides
	if len(sides) == 0 {
		sides = []spi.Side{spi.ClientSide, spi.ServerSide}
	}
	for _, side := range sides {
		t.Run(side.String(), func(t *testing.T) {
			t.Run("PassThrough", func(t *testing.T) { s.testPassThrough(t, side) })
			t.Run("Metadata", func(t *testing.T) { s.testMetadata(t, side) })
			t.Run("EmptyMetadata", func(t *testing.T) { s.testEmptyMetadata(t, side) })
			t.Run("ErrorCodes", func(t *testing.T) { s.testErrorCodes(t, side) })
			t.Run("Concurrent", func(t *testing.T) { s.testConcurrent(t, side) })
			if s.Reject != nil {
				t.Run("ShortCircuit", func(t *testing.T) { s.testShortCircuit(t, side) })
			}
			if _, ok := s.Filter.(spi.BeforeOnlyFilter); ok {
				t.Run("BeforeOnly", func(t *testing.T) { s.testBeforeOnly(t, side) })
			}
		})
	}
}

// newCall returns a call the filter should let through.
func (s FilterSuite) newCall(side spi.Side, method string) *spi.Call {
	call := &spi.Call{
		Side:    side,
		Method:  filterServiceNS + method,
		Peer:    filterTestPeer,
		Meta:    &spi.Metadata{},
		Trailer: &spi.Metadata{},
	}
	call.Meta.Set(filterMetaA, "alpha")
	call.Meta.Set(filterMetaB, "beta with spaces")
	if s.Prepare != nil {
		s.Prepare(call)
	}
	return call
}

// callCtx returns the caller's context: a value and a deadline that
// must reach next.
func callCtx(t *testing.T) (context.Context, time.Time) {
	deadline := time.Now().Add(time.Minute)
	ctx, cancel := context.WithDeadline(context.WithValue(context.Background(), filterCtxKey{}, "caller"), deadline)
	t.Cleanup(cancel)
	return ctx, deadline
}

// invocation records what next saw.
type invocation struct {
	calls    atomic.Int32
	method   string
	side     spi.Side
	peer     string
	oneWay   bool
	stream   bool
	request  any
	ctxValue any
	deadline time.Time
	hasDL    bool
	meta     map[string]string
}

func (in *invocation) next(result error, fill func(call *spi.Call)) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		in.calls.Add(1)
		in.method, in.side, in.peer = call.Method, call.Side, call.Peer
		in.oneWay, in.stream, in.request = call.OneWay, call.Stream, call.Request
		in.ctxValue = ctx.Value(filterCtxKey{})
		in.deadline, in.hasDL = ctx.Deadline()
		in.meta = make(map[string]string)
		call.Meta.Range(func(k, v string) bool {
			if _, dup := in.meta[k]; !dup {
				in.meta[k] = v
			}
			return true
		})
		if fill != nil {
			fill(call)
		}
		return result
	}
}

func (s FilterSuite) testPassThrough(t *testing.T, side spi.Side) {
	kinds := []struct {
		name           string
		oneWay, stream bool
	}{{"Unary", false, false}, {"OneWay", true, false}, {"StreamOpen", false, true}}
	for n, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			ctx, deadline := callCtx(t)
			call := s.newCall(side, k.name)
			call.OneWay, call.Stream = k.oneWay, k.stream
			var req *filterRequest
			var resp *filterResponse
			if !k.stream {
				req = &filterRequest{N: 40 + n}
				call.Request = req
				if !k.oneWay {
					resp = &filterResponse{}
					call.Response = resp
				}
			}
			var in invocation
			err := s.Filter.Wrap(in.next(nil, func(call *spi.Call) {
				if r, ok := call.Response.(*filterResponse); ok && r != nil {
					r.Echo = call.Request.(*filterRequest).N + 1
				}
			}))(ctx, call)
			if err != nil {
				t.Fatalf("a call the filter should let through failed: %v", err)
			}
			if c := in.calls.Load(); c != 1 {
				t.Fatalf("next ran %d times, want once", c)
			}
			if in.method != call.Method || in.side != side || in.peer != filterTestPeer || in.oneWay != k.oneWay || in.stream != k.stream {
				t.Fatalf("next saw method %q side %v peer %q one-way %v stream %v; the caller set %q %v %q %v %v",
					in.method, in.side, in.peer, in.oneWay, in.stream, call.Method, side, filterTestPeer, k.oneWay, k.stream)
			}
			if req != nil && in.request != any(req) {
				t.Fatalf("next saw request %#v, not the caller's %p", in.request, req)
			}
			if req == nil && in.request != nil {
				t.Fatalf("next saw request %#v on a call without one", in.request)
			}
			if resp != nil && resp.Echo != req.N+1 {
				t.Fatalf("the response next filled did not reach the caller: got %+v", *resp)
			}
			if in.ctxValue != "caller" {
				t.Fatalf("next's context lost the caller's values (got %v)", in.ctxValue)
			}
			if !in.hasDL || in.deadline.After(deadline) {
				t.Fatalf("next's deadline is %v (set: %v), want no later than the caller's %v", in.deadline, in.hasDL, deadline)
			}
		})
	}
}

func (s FilterSuite) testMetadata(t *testing.T, side spi.Side) {
	ctx, _ := callCtx(t)
	call := s.newCall(side, "Meta")
	before := make(map[string]string)
	call.Meta.Range(func(k, v string) bool {
		if strings.HasPrefix(k, "x-spitest-") {
			before[k] = v
		}
		return true
	})
	var in invocation
	invoke := s.Filter.Wrap(in.next(nil, func(call *spi.Call) {
		call.Trailer.Set(filterTrailer, "from next")
	}))
	if err := invoke(ctx, call); err != nil {
		t.Fatalf("call failed: %v", err)
	}
	for k, v := range before {
		if got, ok := in.meta[k]; !ok || got != v {
			t.Errorf("metadata %q=%q set before the filter reached next as %q (present: %v)", k, v, got, ok)
		}
		if got, ok := call.Meta.Lookup(k); !ok || got != v {
			t.Errorf("metadata %q=%q set before the filter is %q on the call afterwards (present: %v)", k, v, got, ok)
		}
	}
	if got := call.Trailer.Get(filterTrailer); got != "from next" {
		t.Errorf("trailer set by next: caller sees %q, want %q", got, "from next")
	}
}

func (s FilterSuite) testErrorCodes(t *testing.T, side spi.Side) {
	cases := []struct {
		err  error
		code spi.Code
		text string
	}{
		{nil, spi.OK, ""},
		{spi.Errorf(spi.NotFound, "no user 42"), spi.NotFound, "no user 42"},
		{spi.Errorf(spi.InvalidArgument, "bad id"), spi.InvalidArgument, "bad id"},
		{spi.Errorf(spi.Unavailable, "backend down"), spi.Unavailable, "backend down"},
		{spi.Errorf(spi.Internal, "boom"), spi.Internal, "boom"},
		{spi.Errorf(spi.ResourceExhausted, "slow down"), spi.ResourceExhausted, "slow down"},
		{spi.Errorf(spi.PermissionDenied, "not yours"), spi.PermissionDenied, "not yours"},
		{spi.Errorf(spi.FailedPrecondition, "stale version"), spi.FailedPrecondition, "stale version"},
		{context.DeadlineExceeded, spi.DeadlineExceeded, ""},
		{context.Canceled, spi.Canceled, ""},
		{errors.New("plain failure"), spi.Unknown, "plain failure"},
	}
	var in invocation
	var result error // next's result for the case under way
	// One invoker for every case: Wrap runs once per chain, not per call.
	invoke := s.Filter.Wrap(func(ctx context.Context, call *spi.Call) error {
		return in.next(result, nil)(ctx, call)
	})
	for _, c := range cases {
		ctx, _ := callCtx(t)
		call := s.newCall(side, "Errors")
		result = c.err
		err := invoke(ctx, call)
		if code := spi.CodeOf(err); code != c.code {
			t.Errorf("next returned %v (code %v); the caller got %v (code %v)", c.err, c.code, err, code)
			continue
		}
		if c.text != "" && !strings.Contains(err.Error(), c.text) {
			t.Errorf("next returned %q; the caller got %q, which lost the message", c.err, err)
		}
	}
	if got := in.calls.Load(); got != int32(len(cases)) {
		t.Fatalf("next ran %d times for %d calls", got, len(cases))
	}
}

func (s FilterSuite) testConcurrent(t *testing.T, side spi.Side) {
	const (
		goroutines = 8
		calls      = 25
	)
	codes := []spi.Code{spi.OK, spi.NotFound, spi.Unavailable, spi.OK, spi.Aborted}
	var nexts atomic.Int32
	// next answers each call from its own metadata, so a filter that
	// mixes calls up gives a caller someone else's result.
	invoke := s.Filter.Wrap(func(ctx context.Context, call *spi.Call) error {
		nexts.Add(1)
		id, err := strconv.Atoi(call.Meta.Get(filterMetaID))
		if err != nil {
			return spi.Errorf(spi.DataLoss, "spitest: next got no %s metadata (%v)", filterMetaID, err)
		}
		call.Trailer.Set(filterTrailer, "t"+strconv.Itoa(id))
		if r, ok := call.Response.(*filterResponse); ok {
			r.Echo = call.Request.(*filterRequest).N
		}
		if code := codes[id%len(codes)]; code != spi.OK {
			return spi.Errorf(code, "call %d", id)
		}
		return nil
	})
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		failure error
	)
	fail := func(err error) { errOnce.Do(func() { failure = err }) }
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				id := g*calls + i
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				call := s.newCall(side, "Concurrent")
				call.Meta.Set(filterMetaID, strconv.Itoa(id))
				req, resp := &filterRequest{N: id}, &filterResponse{}
				call.Request, call.Response = req, resp
				err := invoke(ctx, call)
				cancel()
				want := codes[id%len(codes)]
				switch {
				case spi.CodeOf(err) != want:
					fail(fmt.Errorf("call %d: got %v, want code %v", id, err, want))
				case want != spi.OK && !strings.Contains(err.Error(), "call "+strconv.Itoa(id)):
					fail(fmt.Errorf("call %d got another call's error: %v", id, err))
				case call.Trailer.Get(filterTrailer) != "t"+strconv.Itoa(id):
					fail(fmt.Errorf("call %d got trailer %q", id, call.Trailer.Get(filterTrailer)))
				case resp.Echo != id:
					fail(fmt.Errorf("call %d got response %d", id, resp.Echo))
				case call.Meta.Get(filterMetaID) != strconv.Itoa(id):
					fail(fmt.Errorf("call %d: its metadata became %q", id, call.Meta.Get(filterMetaID)))
				}
			}
		}()
	}
	wg.Wait()
	if failure != nil {
		t.Fatal(failure)
	}
	if n := nexts.Load(); n != goroutines*calls {
		t.Fatalf("next ran %d times for %d calls", n, goroutines*calls)
	}
}

func (s FilterSuite) testShortCircuit(t *testing.T, side spi.Side) {
	var nexts atomic.Int32
	invoke := s.Filter.Wrap(func(ctx context.Context, call *spi.Call) error {
		nexts.Add(1)
		return nil
	})
	refused := false
	var err error
	for i := 0; i < 1000 && !refused; i++ {
		ctx, _ := callCtx(t)
		call := &spi.Call{Side: side, Method: filterServiceNS + "Reject", Peer: filterTestPeer,
			Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
		s.Reject(call)
		before := nexts.Load()
		err = invoke(ctx, call)
		if nexts.Load() != before {
			if err != nil {
				t.Fatalf("call %d reached next and still failed: %v", i, err)
			}
			continue // let through (a rate limiter's burst)
		}
		refused = true
	}
	if !refused {
		t.Fatalf("1000 calls readied by Reject all reached next; want a refusal with %v", s.RejectCode)
	}
	var se *spi.Error
	if !errors.As(err, &se) {
		t.Fatalf("refusal is %T (%v), want an *spi.Error", err, err)
	}
	if se.Code != s.RejectCode {
		t.Fatalf("refusal has code %v (%v), want %v", se.Code, err, s.RejectCode)
	}
	// Refusing one call does not break the filter for the others.
	ctx, _ := callCtx(t)
	var in invocation
	if err := s.Filter.Wrap(in.next(nil, nil))(ctx, s.newCall(side, "AfterReject")); err != nil || in.calls.Load() != 1 {
		t.Fatalf("after a refusal, a call the filter should let through got %v (next ran %d times)", err, in.calls.Load())
	}
}

// testEmptyMetadata sends a call carrying no metadata and no Prepare: a
// filter that reads or writes keys must cope with an empty Meta (it may
// refuse the call, with an *spi.Error, but not panic).
func (s FilterSuite) testEmptyMetadata(t *testing.T, side spi.Side) {
	inv := s.Filter.Wrap(func(ctx context.Context, call *spi.Call) error { return nil })
	call := &spi.Call{Side: side, Method: filterServiceNS + "Empty", Peer: filterTestPeer,
		Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("filter panicked on a call without metadata: %v", r)
			}
		}()
		err = inv(context.Background(), call)
	}()
	if err != nil {
		var se *spi.Error
		if !errors.As(err, &se) {
			t.Fatalf("a call without metadata was refused with %T %v, want an *spi.Error", err, err)
		}
	}
	if call.Meta == nil {
		t.Fatal("the filter set call.Meta to nil")
	}
}

// testBeforeOnly checks what an spi.BeforeOnlyFilter promises: next's
// error comes back as it was (the same value) and the trailer as next
// left it, since out of process nothing after next reaches the host.
func (s FilterSuite) testBeforeOnly(t *testing.T, side spi.Side) {
	for _, result := range []error{nil, spi.Errorf(spi.NotFound, "no user 42"), errors.New("plain failure")} {
		var in invocation
		ctx, _ := callCtx(t)
		call := s.newCall(side, "BeforeOnly")
		err := s.Filter.Wrap(in.next(result, func(call *spi.Call) {
			call.Trailer.Reset()
			call.Trailer.Set("x-spitest-trailer", "from next")
		}))(ctx, call)
		if in.calls.Load() != 1 {
			t.Fatalf("next ran %d times", in.calls.Load())
		}
		if err != result {
			t.Errorf("a before-only filter changed next's result %v into %v", result, err)
		}
		if call.Trailer.Len() != 1 || call.Trailer.Get("x-spitest-trailer") != "from next" {
			t.Errorf("a before-only filter changed the trailer next left")
		}
	}
}
