package plugin

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/spi"
	pb "github.com/kiterpc/kite/spi/plugin/proto"
)

// abandonAfter bounds how long a plugin keeps a call whose host never
// sends After (the host lost the connection mid-call) when the call has
// no deadline of its own.
const abandonAfter = 10 * time.Minute

// filterCalls are the calls a served filter has let through and whose
// After is still to come.
type filterCalls struct {
	next    atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]*filterCall
}

func (fc *filterCalls) add(c *filterCall) uint64 {
	id := fc.next.Add(1)
	fc.mu.Lock()
	if fc.pending == nil {
		fc.pending = make(map[uint64]*filterCall)
	}
	fc.pending[id] = c
	fc.mu.Unlock()
	return id
}

func (fc *filterCalls) take(id uint64) *filterCall {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	c := fc.pending[id]
	delete(fc.pending, id)
	return c
}

// filterCall runs one call through a compiled spi.Filter split in two.
// Before starts the filter's invoker in a goroutine around a terminal
// invoker; when the filter calls next, the terminal records it, Before
// answers "proceed" with the metadata as the filter left it, and the
// terminal waits. After hands the terminal the real result, the filter's
// code after next runs, and its final error goes back to the host.
type filterCall struct {
	call    *spi.Call
	reached chan struct{} // closed when the filter called next
	once    sync.Once
	seen    *spi.Call   // the Call the filter passed to next
	result  chan result // After's result for the terminal
	done    chan struct{}
	err     error // the filter's final error, valid after done
	first   *result
	// beforeOnly: the filter is an spi.BeforeOnlyFilter; next returns
	// at once and no After comes.
	beforeOnly bool
}

type result struct {
	err     error
	trailer []*pb.MetaPair
	setT    bool
	tm      *spi.Metadata // the trailer, on the filter channel
}

// terminal is the innermost invoker of a served filter chain.
func (c *filterCall) terminal(ctx context.Context, call *spi.Call) error {
	reachedNow := false
	c.once.Do(func() {
		c.seen = call
		reachedNow = true
		close(c.reached)
	})
	if !reachedNow {
		// A filter that calls next a second time (a retrying filter)
		// cannot cause a second round trip to the host: it sees the
		// first result again.
		if c.first != nil {
			return c.first.err
		}
		return spi.Errorf(spi.FailedPrecondition, "filter plugin: next called twice before the first call finished")
	}
	if c.beforeOnly {
		return nil
	}
	select {
	case r := <-c.result:
		c.first = &r
		if r.setT && call.Trailer != nil {
			setMeta(call.Trailer, r.trailer)
		}
		return r.err
	case <-ctx.Done():
		return ctxError(ctx, "filter plugin: waiting for the call's result")
	}
}

type filterService struct {
	pb.UnimplementedFilterServer
	s *server
}

func callFromPB(ci *pb.CallInfo) *spi.Call {
	if ci == nil {
		ci = &pb.CallInfo{}
	}
	return &spi.Call{
		Side:    spi.Side(ci.Side),
		Method:  ci.Method,
		Peer:    ci.Peer,
		Meta:    metaFromPB(ci.Meta),
		Trailer: &spi.Metadata{},
		OneWay:  ci.OneWay,
		Stream:  ci.Stream,
	}
}

func (f filterService) Before(rctx context.Context, req *pb.BeforeRequest) (*pb.BeforeResponse, error) {
	v, err := f.s.impl(req.Handle)
	if err != nil {
		return nil, err
	}
	call := callFromPB(req.Call)
	fc := &filterCall{
		call:    call,
		reached: make(chan struct{}),
		result:  make(chan result, 1),
		done:    make(chan struct{}),
	}
	_, fc.beforeOnly = v.(spi.BeforeOnlyFilter)
	// The filter's context outlives this rpc: its code after next runs
	// during After. It carries the call's deadline.
	var ctx context.Context
	var cancel context.CancelFunc
	if d, ok := deadlineFromNano(req.GetCall().GetDeadlineUnixNano()); ok {
		ctx, cancel = context.WithDeadline(context.Background(), d)
	} else {
		ctx, cancel = context.WithTimeout(context.Background(), abandonAfter)
	}
	invoke := v.(spi.Filter).Wrap(fc.terminal)
	id := f.s.filters.add(fc)
	go func() {
		defer close(fc.done)
		defer cancel()
		defer func() {
			if r := recover(); r != nil {
				fc.err = f.s.filterPanic(call.Method, r)
			}
		}()
		fc.err = invoke(ctx, call)
	}()
	select {
	case <-fc.reached:
		if fc.beforeOnly {
			f.s.filters.take(id)
			id = 0 // no After
		}
		return &pb.BeforeResponse{Proceed: true, MetaChanged: true, Meta: metaToPB(fc.seen.Meta), CallId: id}, nil
	case <-fc.done:
		f.s.filters.take(id)
		return &pb.BeforeResponse{Proceed: false, Status: statusToPB(fc.err), MetaChanged: true, Meta: metaToPB(call.Meta)}, nil
	case <-rctx.Done():
		f.s.filters.take(id)
		cancel()
		return nil, toGRPC(ctxError(rctx, "filter plugin: before"))
	}
}

func (f filterService) After(rctx context.Context, req *pb.AfterRequest) (*pb.AfterResponse, error) {
	fc := f.s.filters.take(req.CallId)
	if fc == nil {
		return nil, toGRPC(spi.Errorf(spi.NotFound, "filter plugin: call %d is unknown or expired", req.CallId))
	}
	fc.result <- result{err: statusFromPB(req.Result), trailer: req.Trailer, setT: true}
	select {
	case <-fc.done:
	case <-rctx.Done():
		return nil, toGRPC(ctxError(rctx, "filter plugin: after"))
	}
	// The host's trailer is what the filter left on the call it was
	// given (the result's trailer arrived through the call passed to next).
	return &pb.AfterResponse{Result: statusToPB(fc.err), TrailerChanged: true, Trailer: metaToPB(fc.call.Trailer)}, nil
}
