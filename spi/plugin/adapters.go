package plugin

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/kiterpc/kite/spi"
	pb "github.com/kiterpc/kite/spi/plugin/proto"
)

// build is the factory of a loaded plugin's catalog entry: it configures
// a new implementation in the plugin and returns the host-side adapter.
func (p *Process) build(cfg spi.Config) (any, error) {
	h := p.addHandle(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var resp *pb.ConfigureResponse
	err := p.do(ctx, "configure", func(ctx context.Context, c *clients) (err error) {
		resp, err = c.plugin.Configure(ctx, &pb.ConfigureRequest{Handle: h.id, ConfigJson: h.config})
		return err
	})
	if err != nil {
		p.dropHandle(h)
		return nil, err
	}
	switch p.decl.Kind {
	case spi.KindCodec:
		return &remoteCodec{p: p, h: h, name: resp.Name, id: uint8(resp.Id)}, nil
	case spi.KindCompressor:
		return &remoteCompressor{p: p, h: h, name: resp.Name, id: uint8(resp.Id)}, nil
	case spi.KindRegistry:
		r := &remoteRegistry{p: p, h: h, registered: make(map[string]spi.Instance)}
		h.replay = r.replay
		return r, nil
	case spi.KindBalancer:
		b := &remoteBalancer{p: p, h: h, name: resp.Name}
		h.replay = b.replay
		return b, nil
	case spi.KindFilter:
		return &remoteFilter{p: p, h: h}, nil
	}
	p.dropHandle(h)
	return nil, spi.Errorf(spi.Unimplemented, "%s: kind %s cannot be bridged", p.decl, p.decl.Kind)
}

// ---------------------------------------------------------------- codec

// remoteCodec sends the canonical JSON form of a value to the plugin and
// gets the codec's bytes back (and the reverse). Per call it costs a
// json.Marshal/Unmarshal on the host plus one gRPC round trip.
type remoteCodec struct {
	p    *Process
	h    *handle
	name string
	id   uint8
}

func (c *remoteCodec) Name() string { return c.name }
func (c *remoteCodec) ID() uint8    { return c.id }
func (c *remoteCodec) Close() error { return c.p.release(c.h) }

// typed returns v as a protobuf message when it travels in typed
// canonical form: the codec's wire id says its bodies are protobuf, so
// it needs the message's type, which encoding/json would lose.
func (c *remoteCodec) typed(v any) (proto.Message, bool) {
	m, ok := v.(proto.Message)
	return m, ok && c.id == spi.CodecProto
}

// canonical returns the canonical form of v: for a protobuf message
// bound for a protobuf codec, its protojson form packed as a
// google.protobuf.Any (type and fields); otherwise its encoding/json form.
func (c *remoteCodec) canonical(v any) ([]byte, error) {
	m, ok := c.typed(v)
	if !ok {
		return json.Marshal(v)
	}
	a, err := anypb.New(m)
	if err != nil {
		return nil, err
	}
	return protojson.Marshal(a)
}

func (c *remoteCodec) Marshal(dst []byte, v any) ([]byte, error) {
	canon, err := c.canonical(v)
	if err != nil {
		return dst, spi.WrapError(spi.Internal, err, "codec %s (plugin): %T has no canonical JSON form: %v", c.name, v, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var out []byte
	err = c.p.do(ctx, "codec marshal", func(ctx context.Context, cl *clients) error {
		resp, err := cl.codec.Marshal(ctx, &pb.CodecRequest{Handle: c.h.id, Data: canon})
		if err == nil {
			out = resp.Data
		}
		return err
	})
	if err != nil {
		return dst, err
	}
	return append(dst, out...), nil
}

func (c *remoteCodec) Unmarshal(data []byte, v any) error {
	m, typed := c.typed(v)
	if typed {
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return spi.Errorf(spi.InvalidArgument, "codec %s (plugin): cannot decode into a nil %T", c.name, v)
		}
		// The plugin learns the message's type from an Any around the
		// body (see CanonicalCodec).
		wrapped, err := proto.Marshal(&anypb.Any{TypeUrl: typeURLPrefix + string(m.ProtoReflect().Descriptor().FullName()), Value: data})
		if err != nil {
			return spi.WrapError(spi.Internal, err, "codec %s (plugin): %v", c.name, err)
		}
		data = wrapped
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var canon []byte
	err := c.p.do(ctx, "codec unmarshal", func(ctx context.Context, cl *clients) error {
		// The request is serialised before the rpc returns, so data is
		// not retained, as the Codec contract requires.
		resp, err := cl.codec.Unmarshal(ctx, &pb.CodecRequest{Handle: c.h.id, Data: data})
		if err == nil {
			canon = resp.Data
		}
		return err
	})
	if err != nil {
		return err
	}
	if typed {
		err = protojson.Unmarshal(canon, m)
	} else {
		err = json.Unmarshal(canon, v)
	}
	if err != nil {
		return spi.WrapError(spi.InvalidArgument, err, "codec %s (plugin): canonical form does not fit %T: %v", c.name, v, err)
	}
	return nil
}

// typeURLPrefix is the conventional prefix of a google.protobuf.Any's
// type URL.
const typeURLPrefix = "type.googleapis.com/"

// ---------------------------------------------------------------- compressor

type remoteCompressor struct {
	p    *Process
	h    *handle
	name string
	id   uint8
}

func (c *remoteCompressor) Name() string { return c.name }
func (c *remoteCompressor) ID() uint8    { return c.id }
func (c *remoteCompressor) Close() error { return c.p.release(c.h) }

func (c *remoteCompressor) Compress(dst, src []byte) ([]byte, error) {
	return c.run("compress", dst, src, 0, func(ctx context.Context, cl *clients, req *pb.CompressRequest) (*pb.CodecResponse, error) {
		return cl.compressor.Compress(ctx, req)
	})
}

func (c *remoteCompressor) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	out, err := c.run("decompress", dst, src, maxSize, func(ctx context.Context, cl *clients, req *pb.CompressRequest) (*pb.CodecResponse, error) {
		return cl.compressor.Decompress(ctx, req)
	})
	if err == nil && maxSize > 0 && len(out)-len(dst) > maxSize {
		return dst, spi.Errorf(spi.ResourceExhausted, "compressor %s (plugin): output exceeds %d bytes", c.name, maxSize)
	}
	return out, err
}

func (c *remoteCompressor) run(what string, dst, src []byte, maxSize int,
	fn func(context.Context, *clients, *pb.CompressRequest) (*pb.CodecResponse, error)) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var out []byte
	err := c.p.do(ctx, what, func(ctx context.Context, cl *clients) error {
		resp, err := fn(ctx, cl, &pb.CompressRequest{Handle: c.h.id, Data: src, MaxSize: int64(maxSize)})
		if err == nil {
			out = resp.Data
		}
		return err
	})
	if err != nil {
		return dst, err
	}
	return append(dst, out...), nil
}

// ---------------------------------------------------------------- registry

// remoteRegistry remembers what it registered so that a restarted plugin
// announces the same instances again.
type remoteRegistry struct {
	p *Process
	h *handle

	mu         sync.Mutex
	registered map[string]spi.Instance
}

func (r *remoteRegistry) Register(ctx context.Context, in spi.Instance) error {
	err := r.p.do(ctx, "register", func(ctx context.Context, c *clients) error {
		_, err := c.registry.Register(ctx, &pb.RegisterRequest{Handle: r.h.id, Instance: instanceToPB(in)})
		return err
	})
	if err == nil {
		r.mu.Lock()
		r.registered[in.Key()] = in
		r.mu.Unlock()
	}
	return err
}

func (r *remoteRegistry) Deregister(ctx context.Context, in spi.Instance) error {
	// Forget it first: if the plugin is down, a restart must not bring
	// the instance back.
	r.mu.Lock()
	delete(r.registered, in.Key())
	r.mu.Unlock()
	return r.p.do(ctx, "deregister", func(ctx context.Context, c *clients) error {
		_, err := c.registry.Deregister(ctx, &pb.RegisterRequest{Handle: r.h.id, Instance: instanceToPB(in)})
		return err
	})
}

func (r *remoteRegistry) Resolve(ctx context.Context, service string) ([]spi.Instance, error) {
	var out []spi.Instance
	err := r.p.do(ctx, "resolve", func(ctx context.Context, c *clients) error {
		resp, err := c.registry.Resolve(ctx, &pb.ResolveRequest{Handle: r.h.id, Service: service})
		if err == nil {
			out = instancesFromPB(resp.Instances)
		}
		return err
	})
	return out, err
}

func (r *remoteRegistry) Close() error {
	r.p.dropHandle(r.h)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	err := r.p.do(ctx, "close", func(ctx context.Context, c *clients) error {
		_, err := c.registry.Close(ctx, &pb.Handle{Handle: r.h.id})
		return err
	})
	if spi.CodeOf(err) == spi.Unavailable {
		return nil // the process and its registrations are gone
	}
	return err
}

func (r *remoteRegistry) replay(ctx context.Context, c *clients) error {
	r.mu.Lock()
	ins := make([]spi.Instance, 0, len(r.registered))
	for _, in := range r.registered {
		ins = append(ins, in)
	}
	r.mu.Unlock()
	for _, in := range ins {
		if _, err := c.registry.Register(ctx, &pb.RegisterRequest{Handle: r.h.id, Instance: instanceToPB(in)}); err != nil {
			return err
		}
	}
	return nil
}

func (r *remoteRegistry) Watch(ctx context.Context, service string) (spi.Watcher, error) {
	g, err := r.p.current()
	if err != nil {
		return nil, err
	}
	// ctx bounds opening the watch; the watch itself lives until Stop,
	// which cancels the stream (and so the plugin's watch).
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopOpen := context.AfterFunc(ctx, cancel)
	req := &pb.ResolveRequest{Handle: r.h.id, Service: service}
	stream, err := g.rpc.registry.Watch(wctx, req)
	var first *pb.Instances
	if err == nil {
		first, err = stream.Recv()
	}
	if !stopOpen() {
		// ctx ended while opening.
		cancel()
		return nil, ctxError(ctx, r.p.decl.String()+": watch")
	}
	if err != nil {
		err = r.p.callError(ctx, g, "watch", err)
		cancel()
		return nil, err
	}
	w := &remoteWatcher{
		r: r, req: req, ctx: wctx, cancel: cancel,
		notify: make(chan struct{}, 1), done: make(chan struct{}),
	}
	w.put(first)
	go w.run(g, stream)
	return w, nil
}

// remoteWatcher follows one Watch stream. A goroutine receives snapshots
// and keeps the latest (a slow consumer skips intermediate ones: each is
// a full snapshot). When the plugin dies, the goroutine waits for the
// restart and opens the stream again; the new stream's first snapshot is
// delivered like any other.
type remoteWatcher struct {
	r      *remoteRegistry
	req    *pb.ResolveRequest
	ctx    context.Context
	cancel context.CancelFunc
	notify chan struct{}
	done   chan struct{}

	mu      sync.Mutex
	latest  []spi.Instance
	has     bool
	err     error
	stopped bool
}

func (w *remoteWatcher) put(s *pb.Instances) {
	w.mu.Lock()
	w.latest, w.has = instancesFromPB(s.Instances), true
	w.mu.Unlock()
	w.signal()
}

func (w *remoteWatcher) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.signal()
}

func (w *remoteWatcher) signal() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *remoteWatcher) run(g *generation, stream pb.Registry_WatchClient) {
	defer close(w.done)
	p := w.r.p
	for {
		s, err := stream.Recv()
		if err == nil {
			w.put(s)
			continue
		}
		if w.ctx.Err() != nil {
			w.fail(spi.WrapError(spi.Canceled, w.ctx.Err(), "%s: watch of %q stopped", p.decl, w.req.Service))
			return
		}
		if e, ok := appError(err); ok {
			w.fail(e)
			return
		}
		// The bridge broke. Wait until the process is seen to exit (or a
		// second passes, for a broken connection to a live process), then
		// for a running generation, and reopen.
		p.kick()
		p.logger.Warn("watch interrupted; reopening", "service", w.req.Service, "error", err)
		t := time.NewTimer(time.Second)
		select {
		case <-g.exited:
		case <-t.C:
		case <-w.ctx.Done():
		}
		t.Stop()
		ng, werr := p.waitGen(w.ctx)
		if werr != nil {
			if w.ctx.Err() != nil {
				werr = spi.WrapError(spi.Canceled, w.ctx.Err(), "%s: watch of %q stopped", p.decl, w.req.Service)
			}
			w.fail(werr)
			return
		}
		g = ng
		stream, err = g.rpc.registry.Watch(w.ctx, w.req)
		if err != nil {
			// Opening a server stream does not fail on the plugin's
			// errors; those come from Recv. Loop to handle it there.
			stream = failedStream{err: err}
		}
	}
}

func (w *remoteWatcher) Next(ctx context.Context) ([]spi.Instance, error) {
	for {
		w.mu.Lock()
		if w.stopped {
			w.mu.Unlock()
			return nil, spi.Errorf(spi.Canceled, "%s: watch of %q stopped", w.r.p.decl, w.req.Service)
		}
		if w.has {
			ins := w.latest
			w.latest, w.has = nil, false
			w.mu.Unlock()
			return ins, nil
		}
		if w.err != nil {
			err := w.err
			w.mu.Unlock()
			// Leave the token for other waiters.
			w.signal()
			return nil, err
		}
		w.mu.Unlock()
		select {
		case <-w.notify:
		case <-ctx.Done():
			return nil, ctxError(ctx, "watch next")
		}
	}
}

func (w *remoteWatcher) Stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.signal()
	w.cancel()
	<-w.done
}

// failedStream is a watch stream whose opening failed.
type failedStream struct {
	pb.Registry_WatchClient
	err error
}

func (f failedStream) Recv() (*pb.Instances, error) { return nil, f.err }

// ---------------------------------------------------------------- balancer

// remoteBalancer asks the plugin for a picking table on each Build; picks
// never leave the process. While the plugin is down, Build falls back to a
// smooth weighted round-robin computed here, and those pickers are given
// the plugin's table as soon as it is back.
type remoteBalancer struct {
	p    *Process
	h    *handle
	name string

	mu    sync.Mutex
	stale []*stalePicker
}

type stalePicker struct {
	picker    *TablePicker
	instances []spi.Instance
}

func (b *remoteBalancer) Name() string { return b.name }
func (b *remoteBalancer) Close() error { return b.p.release(b.h) }

func (b *remoteBalancer) Build(instances []spi.Instance) spi.Picker {
	instances = append([]spi.Instance(nil), instances...)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	t, err := b.table(ctx, nil, instances)
	if err == nil {
		var p *TablePicker
		if p, err = NewTablePicker(instances, t); err == nil {
			return p
		}
	}
	b.p.logger.Warn("balancer plugin gave no table; picking weighted round-robin until it is back", "error", err)
	p, _ := NewTablePicker(instances, spi.PickTable{Schedule: weightedSchedule(instances)})
	b.mu.Lock()
	b.stale = append(b.stale, &stalePicker{picker: p, instances: instances})
	b.mu.Unlock()
	return p
}

func (b *remoteBalancer) table(ctx context.Context, c *clients, instances []spi.Instance) (spi.PickTable, error) {
	req := &pb.BuildRequest{Handle: b.h.id, Instances: instancesToPB(instances)}
	var resp *pb.PickTable
	var err error
	if c != nil {
		resp, err = c.balancer.Build(ctx, req)
	} else {
		err = b.p.do(ctx, "build", func(ctx context.Context, c *clients) (err error) {
			resp, err = c.balancer.Build(ctx, req)
			return err
		})
	}
	if err != nil {
		return spi.PickTable{}, err
	}
	t := spi.PickTable{HashFunc: resp.Hash, Schedule: make([]int, len(resp.Schedule))}
	for i, s := range resp.Schedule {
		t.Schedule[i] = int(s)
	}
	if len(resp.Ring) > 0 {
		t.Ring = make([]spi.RingPoint, len(resp.Ring))
		for i, rp := range resp.Ring {
			t.Ring[i] = spi.RingPoint{Hash: rp.Hash, Index: int(rp.Index)}
		}
	}
	return t, nil
}

// replay gives the pickers built during an outage the plugin's tables.
func (b *remoteBalancer) replay(ctx context.Context, c *clients) error {
	b.mu.Lock()
	stale := b.stale
	b.stale = nil
	b.mu.Unlock()
	for _, s := range stale {
		t, err := b.table(ctx, c, s.instances)
		if err != nil {
			return err
		}
		tb, err := newTable(s.instances, t)
		if err != nil {
			b.p.logger.Warn("balancer plugin gave an invalid table", "error", err)
			continue
		}
		s.picker.swap(tb)
	}
	return nil
}

// weightedSchedule is one period of smooth weighted round-robin (as
// nginx does it) over the instances' effective weights, reduced by their
// greatest common divisor and capped at maxSampledSchedule entries.
func weightedSchedule(instances []spi.Instance) []int {
	n := len(instances)
	if n == 0 {
		return nil
	}
	g := 0
	for _, in := range instances {
		g = gcd(g, in.EffectiveWeight())
	}
	w := make([]int, n)
	total := 0
	for i, in := range instances {
		w[i] = in.EffectiveWeight() / g
		total += w[i]
	}
	total = min(total, maxSampledSchedule)
	cur := make([]int, n)
	sched := make([]int, 0, total)
	sum := 0
	for _, x := range w {
		sum += x
	}
	for range total {
		best := 0
		for i := range n {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		sched = append(sched, best)
	}
	return sched
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// ---------------------------------------------------------------- filter

// remoteFilter runs a filter plugin around the rest of the chain: Before
// (which may change the request metadata or short-circuit), the rest of
// the chain in this process, then After (which sees the result and may
// replace it, and may change the trailer). The plugin never sees the
// request or response values.
type remoteFilter struct {
	p *Process
	h *handle
}

func (f *remoteFilter) Close() error { return f.p.release(f.h) }

func callToPB(ctx context.Context, call *spi.Call) *pb.CallInfo {
	return &pb.CallInfo{
		Method:           call.Method,
		Side:             uint32(call.Side),
		Peer:             call.Peer,
		Meta:             metaToPB(call.Meta),
		OneWay:           call.OneWay,
		Stream:           call.Stream,
		DeadlineUnixNano: deadlineNano(ctx),
	}
}

// MetadataOnly implements spi.MetadataFilter: a filter out of process sees
// method, peer, metadata and deadline, never the request, so a server can
// run it (an auth plugin, say) before decoding the body.
func (*remoteFilter) MetadataOnly() {}

func (f *remoteFilter) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		g, err := f.p.current()
		if err != nil {
			return err
		}
		if fc := g.fchan.Load(); fc != nil {
			return f.invokeChan(ctx, g, fc, call, next)
		}
		return f.invokeGRPC(ctx, call, next)
	}
}

// invokeChan runs the call through the plugin on the filter channel: one
// exchange before the rest of the chain and, unless the filter is
// before-only (Before answers call_id 0), one after it.
func (f *remoteFilter) invokeChan(ctx context.Context, g *generation, fc *filterChan, call *spi.Call, next spi.Invoker) error {
	id := fc.next.Add(1)
	payload, err := fc.roundTrip(ctx, frameBefore, id, func(b []byte) []byte {
		b = putUv(b, f.h.id)
		b = append(b, byte(call.Side))
		var flags byte
		if call.OneWay {
			flags |= flagOneWay
		}
		if call.Stream {
			flags |= flagStream
		}
		b = append(b, flags)
		b = putUv(b, uint64(deadlineNano(ctx)))
		b = putStr(b, call.Method)
		b = putStr(b, call.Peer)
		return putMeta(b, call.Meta)
	})
	if err != nil {
		// Fail closed, as on gRPC.
		return f.p.chanError(ctx, g, fc, "filter before", err)
	}
	r := rd{b: payload}
	flags := r.u8()
	callID := r.uv()
	status := r.status()
	if flags&flagChanged != 0 {
		if call.Meta == nil {
			call.Meta = &spi.Metadata{}
		}
		r.meta(call.Meta)
	}
	if err := r.err(); err != nil {
		return f.p.chanError(ctx, g, fc, "filter before", err)
	}
	if flags&flagProceed == 0 {
		return status
	}
	callErr := next(ctx, call)
	if callID == 0 {
		return callErr
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	payload, err = fc.roundTrip(actx, frameAfter, fc.next.Add(1), func(b []byte) []byte {
		b = putUv(b, f.h.id)
		b = putUv(b, callID)
		b = putStatus(b, callErr)
		return putMeta(b, call.Trailer)
	})
	if err == nil {
		r = rd{b: payload}
		flags = r.u8()
		status = r.status()
		if flags&flagChanged != 0 {
			if call.Trailer == nil {
				call.Trailer = &spi.Metadata{}
			}
			r.meta(call.Trailer)
		}
		err = r.err()
	}
	if err != nil {
		if _, app := err.(chanAppError); !app && actx.Err() == nil {
			f.p.channelBroke(g, fc, err)
		}
		f.p.logger.Warn("filter plugin after failed; keeping the call's result", "method", call.Method, "error", err)
		return callErr
	}
	return status
}

// invokeGRPC runs the call through the plugin's Filter service.
func (f *remoteFilter) invokeGRPC(ctx context.Context, call *spi.Call, next spi.Invoker) error {
	var before *pb.BeforeResponse
	err := f.p.do(ctx, "filter before", func(ctx context.Context, c *clients) (err error) {
		before, err = c.filter.Before(ctx, &pb.BeforeRequest{Handle: f.h.id, Call: callToPB(ctx, call)})
		return err
	})
	if err != nil {
		// Fail closed: a filter that cannot run (an auth or deny-list
		// plugin that crashed) must not let calls through unchecked.
		return err
	}
	if before.MetaChanged {
		if call.Meta == nil {
			call.Meta = &spi.Metadata{}
		}
		setMeta(call.Meta, before.Meta)
	}
	if !before.Proceed {
		return statusFromPB(before.Status)
	}
	callErr := next(ctx, call)
	if before.CallId == 0 {
		return callErr
	}
	// After runs even when the caller gave up, so the plugin's side of
	// the call completes; it is bounded by its own timeout.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	var after *pb.AfterResponse
	err = f.p.do(actx, "filter after", func(actx context.Context, c *clients) (err error) {
		after, err = c.filter.After(actx, &pb.AfterRequest{
			Handle: f.h.id, CallId: before.CallId, Call: callToPB(ctx, call),
			Result: statusToPB(callErr), Trailer: metaToPB(call.Trailer),
		})
		return err
	})
	if err != nil {
		// The call itself happened; report its own result rather than
		// turn a done call into a failure that could be retried.
		f.p.logger.Warn("filter plugin after failed; keeping the call's result", "method", call.Method, "error", err)
		return callErr
	}
	if after.TrailerChanged {
		if call.Trailer == nil {
			call.Trailer = &spi.Metadata{}
		}
		setMeta(call.Trailer, after.Trailer)
	}
	return statusFromPB(after.Result)
}
