package core

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/core/defaults"
	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/balancerkit"
)

// ClientOptions configures a Client. Zero values take the defaults of
// the core/defaults table, the same ones kite.hcl's client block has
// (docs/CONFIG.md); Client.Options reports the effective values.
type ClientOptions struct {
	// Service is the logical service name resolved through Registry.
	Service string
	// Targets are static endpoint addresses ("host:port", "unix:/path"),
	// used when Registry is nil.
	Targets []string
	// Registry, when set, is watched for Service's instances.
	Registry spi.Registry
	// Balancer picks an instance per call; default the catalog's
	// "weighted" (smooth weighted round-robin on registered weights), or
	// core's own smooth weighted round-robin when it is not linked.
	Balancer spi.Balancer
	// Transport dials endpoints; default TCP ("unix:" addresses use Unix).
	Transport spi.Transport

	// Catalog supplies codecs/compressors for decoding; nil = spi.Default.
	Catalog *spi.Catalog
	// Codec encodes requests; default the catalog's "json" codec, or raw
	// when none is linked.
	Codec spi.Codec
	// Compressor compresses request bodies of at least CompressThreshold
	// bytes (default 1 KiB); the server answers in kind.
	Compressor        spi.Compressor
	CompressThreshold int

	// Timeout bounds each call, retries included, when the caller's
	// context has no earlier deadline; 0 = none. Methods may override it.
	Timeout time.Duration
	// ConnectTimeout bounds dialing one endpoint. Default 2 s.
	ConnectTimeout time.Duration
	// ConnsPerEndpoint is the pool size per endpoint. Default 1: one
	// multiplexed connection carries thousands of concurrent calls.
	ConnsPerEndpoint int
	// IdleTimeout closes pooled connections unused for this long. Default
	// 5 minutes; negative disables.
	IdleTimeout time.Duration
	// HeartbeatInterval: a connection silent for this long is pinged.
	// Default 10 s; negative disables heartbeats.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout: a ping unanswered this long marks the peer dead.
	// Default 3 s.
	HeartbeatTimeout time.Duration
	// ReconnectBackoffMin/Max bound the exponential, jittered delay before
	// redialing an endpoint that failed. Defaults 50 ms and 5 s.
	ReconnectBackoffMin time.Duration
	ReconnectBackoffMax time.Duration
	// MaxFrame and MaxMetadata bound incoming frames. Defaults 4 MiB, 64 KiB.
	MaxFrame    int
	MaxMetadata int
	// StreamWindow is the per-stream receive window in messages. Default 64.
	StreamWindow int

	// Retry is the retry policy (kite.hcl's retry block); nil takes the
	// resilience package defaults: 3 attempts, backoff "10ms..1s", a
	// budget of 0.1 retries per call plus 10 per second. MaxAttempts 1
	// turns retries off. Only safe failures are retried: before the
	// request was sent, or of idempotent methods (resilience.ShouldRetry).
	Retry *resilience.Policy
	// RetryCodes, when not empty, limits retries to these codes; empty
	// retries every code the retry rule allows (Unavailable,
	// DeadlineExceeded, ResourceExhausted, each only where safe).
	RetryCodes []spi.Code
	// Methods holds per-method timeout, idempotency and retry settings,
	// keyed by "Service.Method".
	Methods map[string]MethodOptions
	// Breaker configures the per-endpoint circuit breakers (outlier
	// ejection); nil takes the resilience defaults. Set both
	// ConsecutiveFailures and FailureRatio negative to never eject.
	Breaker *resilience.BreakerConfig

	// Filters run around every call, Filters[0] outermost.
	Filters []spi.Filter
	// Logger receives client events; default hclog.Default().
	Logger hclog.Logger
}

// defaults fills every zero field from the core/defaults table, the one
// kite.hcl's client block reads too (core/stack's TestDefaultsAgree
// compares the two field by field).
func (o *ClientOptions) defaults() error {
	if o.Catalog == nil {
		o.Catalog = spi.Default
	}
	if o.Codec == nil {
		// The default ("auto"), else a linked "json" (a catalog with its
		// own JSON codec and no auto), else raw bytes.
		if c, err := o.Catalog.BuildCodec(defaults.Codec, nil); err == nil {
			o.Codec = c
		} else if c, err := o.Catalog.BuildCodec("json", nil); err == nil {
			o.Codec = c
		} else {
			o.Codec = RawCodec{}
		}
	}
	if o.Transport == nil {
		o.Transport = TCP{} // "unix:" addresses still dial Unix (transportFor)
	}
	if o.CompressThreshold <= 0 {
		o.CompressThreshold = defaults.CompressThreshold
	}
	if o.Timeout == 0 {
		o.Timeout = defaults.Timeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = defaults.ConnectTimeout
	}
	if o.ConnsPerEndpoint <= 0 {
		o.ConnsPerEndpoint = defaults.ConnsPerEndpoint
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = defaults.PoolIdleTimeout
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = defaults.HeartbeatInterval
	}
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = defaults.HeartbeatTimeout
	}
	if o.ReconnectBackoffMin <= 0 {
		o.ReconnectBackoffMin = defaults.ReconnectBackoffMin
	}
	if o.ReconnectBackoffMax <= 0 {
		o.ReconnectBackoffMax = defaults.ReconnectBackoffMax
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = defaults.MaxFrame
	}
	if o.MaxMetadata <= 0 {
		o.MaxMetadata = defaults.MaxMetadata
	}
	if o.StreamWindow <= 0 {
		o.StreamWindow = defaults.StreamWindow
	}
	if o.Balancer == nil {
		// The catalog's "weighted" when linked (the kite package links
		// it), else core's own smooth weighted round-robin.
		if b, err := o.Catalog.BuildBalancer(defaults.Balancer, nil); err == nil {
			o.Balancer = b
		} else {
			o.Balancer = weightedRR{}
		}
	}
	if o.RetryCodes == nil {
		o.RetryCodes = defaults.RetryCodes
	}
	// The retry policy and breaker config are resolved here (not left nil
	// for the resilience package to default) so Options reports what the
	// client really runs with.
	pol := resilience.Policy{}
	if o.Retry != nil {
		pol = *o.Retry
	}
	pol = pol.Resolved()
	o.Retry = &pol
	bc := resilience.BreakerConfig{}
	if o.Breaker != nil {
		bc = *o.Breaker
	}
	bc = bc.Resolved()
	o.Breaker = &bc
	if o.Logger == nil {
		o.Logger = hclog.Default()
	}
	if o.Registry == nil && len(o.Targets) == 0 {
		return errors.New("kite: client needs Targets or a Registry")
	}
	if o.Registry != nil && o.Service == "" {
		return errors.New("kite: a client with a Registry needs a Service name")
	}
	return nil
}

// Client places calls to one service. It is safe for concurrent use and
// meant to be long-lived: it owns pooled connections, a registry watch and
// a heartbeat loop, all stopped by Close.
type Client struct {
	opts   ClientOptions
	log    hclog.Logger
	table  *codecTable
	codec  spi.Codec
	comp   spi.Compressor
	invoke spi.Invoker
	res    *resilienceState // retries, budget, breakers (retry.go)
	// protocol is the calls' spi.Call.Protocol: ProtocolGRPC when the
	// transport speaks gRPC (GRPCTransport), so filters name the system.
	protocol string

	picker atomic.Pointer[pickerBox]

	mu        sync.Mutex
	endpoints map[string]*endpoint
	instances []spi.Instance
	closed    bool
	updated   chan struct{} // closed and replaced on every instance update

	ctx    context.Context // ends on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	watchMu   sync.Mutex    // serialises SetDiscovery
	stopWatch func()        // ends the current registry watch; nil: none
	watchDone chan struct{} // closed when that watch has ended
}

type pickerBox struct{ p spi.Picker }

// NewClient returns a client. With static Targets it is ready at once;
// with a Registry it starts watching and calls wait (within their
// deadline) for the first snapshot.
func NewClient(opts ClientOptions) (*Client, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	t, err := newCodecTable(opts.Catalog, []spi.Codec{opts.Codec}, nil)
	if err != nil {
		return nil, err
	}
	if opts.Compressor != nil {
		t.compressors[opts.Compressor.ID()] = opts.Compressor
	}
	log := opts.Logger.Named("client")
	res, err := newResilience(&opts, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		opts: opts, log: log, table: t,
		codec: opts.Codec, comp: opts.Compressor, res: res,
		endpoints: make(map[string]*endpoint),
		updated:   make(chan struct{}),
		ctx:       ctx, cancel: cancel,
	}
	c.invoke = spi.Chain(c.retrying, opts.Filters...)
	if opts.Transport != nil && opts.Transport.Name() == spi.ProtocolGRPC {
		c.protocol = spi.ProtocolGRPC
	}
	if opts.Registry == nil {
		c.setInstances(targetInstances(opts.Service, opts.Targets))
	} else {
		c.wg.Add(1)
		c.startWatch(opts.Registry, opts.Service)
	}
	c.wg.Add(1)
	go c.janitorLoop()
	return c, nil
}

func targetInstances(service string, targets []string) []spi.Instance {
	ins := make([]spi.Instance, 0, len(targets))
	for _, a := range targets {
		ins = append(ins, spi.Instance{Service: service, Addr: a})
	}
	return ins
}

// Discovery is where a client finds its instances: a Registry watched for
// Service, or fixed Targets when Registry is nil.
type Discovery struct {
	Service  string
	Registry spi.Registry
	Targets  []string
}

// SetDiscovery switches where the client finds its instances, in a
// running client (kite.hcl's SIGHUP reload uses it to move a client from
// static targets to a registry, or from one registry to another). Calls
// go on meanwhile: with new Targets the instance list is replaced at once;
// with a Registry the current instances stay in use until the new
// registry's first snapshot replaces them, so a switch leaves no gap. The
// old registry's watch is stopped; the registry itself is the caller's.
func (c *Client) SetDiscovery(d Discovery) error {
	if d.Registry == nil && len(d.Targets) == 0 {
		return errors.New("kite: discovery needs Targets or a Registry")
	}
	if d.Registry != nil && d.Service == "" {
		return errors.New("kite: a Registry needs a Service name")
	}
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	c.endWatch()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return spi.Errorf(spi.Unavailable, "client closed")
	}
	c.opts.Service, c.opts.Registry, c.opts.Targets = d.Service, d.Registry, slices.Clone(d.Targets)
	if d.Registry != nil {
		// Under c.mu with closed false: Close has not begun to Wait.
		c.wg.Add(1)
	}
	c.mu.Unlock()
	if d.Registry == nil {
		c.setInstances(targetInstances(d.Service, d.Targets))
		return nil
	}
	c.startWatch(d.Registry, d.Service)
	return nil
}

// startWatch runs a watch of reg for service until endWatch or Close;
// the caller has counted it in c.wg.
func (c *Client) startWatch(reg spi.Registry, service string) {
	ctx, cancel := context.WithCancel(c.ctx)
	done := make(chan struct{})
	c.stopWatch, c.watchDone = cancel, done
	go func() {
		defer close(done)
		c.watchLoop(ctx, reg, service)
	}()
}

// endWatch stops the current watch, if any, and waits for it to end.
func (c *Client) endWatch() {
	if c.stopWatch == nil {
		return
	}
	c.stopWatch()
	<-c.watchDone
	c.stopWatch, c.watchDone = nil, nil
}

// Call invokes method ("Service.Method") with req and decodes the answer
// into resp (a pointer). It returns a *spi.Error with a code on failure.
func (c *Client) Call(ctx context.Context, method string, req, resp any) error {
	call := newCall(ctx, spi.Call{Side: spi.ClientSide, Method: method, Request: req, Response: resp, Protocol: c.protocol})
	return c.Invoke(ctx, call)
}

// Invoke runs a prepared call through the filters. A nil call.Meta is
// given an empty Metadata first, so filters never see nil.
func (c *Client) Invoke(ctx context.Context, call *spi.Call) error {
	if call.Meta == nil {
		call.Meta = &spi.Metadata{}
	}
	if call.Protocol == "" {
		call.Protocol = c.protocol
	}
	if d := c.res.pol.Load().policy(call.Method).timeout; d > 0 && !call.OneWay {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > d {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
	}
	return c.invoke(ctx, call)
}

// OneWay sends req to method without waiting for, or getting, an answer.
// It returns once the request is queued on a connection.
func (c *Client) OneWay(ctx context.Context, method string, req any) error {
	call := newCall(ctx, spi.Call{Side: spi.ClientSide, Method: method, Request: req, OneWay: true, Protocol: c.protocol})
	return c.invoke(ctx, call)
}

// Future is the result of an asynchronous call.
type Future struct {
	done chan struct{}
	err  error
	// Response is the value passed to Go, filled when Done is closed.
	Response any
}

// Done is closed when the call has finished.
func (f *Future) Done() <-chan struct{} { return f.done }

// Wait blocks until the call finishes and returns its error.
func (f *Future) Wait() error {
	<-f.done
	return f.err
}

// Err returns the call's error once Done is closed (nil before).
func (f *Future) Err() error {
	select {
	case <-f.done:
		return f.err
	default:
		return nil
	}
}

// Go starts a call and returns at once; like net/rpc's Go.
func (c *Client) Go(ctx context.Context, method string, req, resp any) *Future {
	f := &Future{done: make(chan struct{}), Response: resp}
	go func() {
		f.err = c.Call(ctx, method, req, resp)
		close(f.done)
	}()
	return f
}

// Stream opens a stream to method. Cancel ctx to abort it.
func (c *Client) Stream(ctx context.Context, method string) (*Stream, error) {
	call := newCall(ctx, spi.Call{Side: spi.ClientSide, Method: method, Stream: true, Protocol: c.protocol})
	var st *Stream
	inner := func(ctx context.Context, call *spi.Call) error {
		var at attempt
		cc, err := c.conn(ctx, call, &at)
		if err != nil {
			return err
		}
		st, err = cc.openStream(ctx, call)
		at.finish(spi.DoneInfo{Err: err, Duration: time.Since(at.start), Sent: err == nil})
		return err
	}
	if err := spi.Chain(inner, c.opts.Filters...)(ctx, call); err != nil {
		return nil, err
	}
	return st, nil
}

// send makes one attempt of a call: pick, get a connection, round trip.
// at records where it went and whether the request reached the wire.
func (c *Client) send(ctx context.Context, call *spi.Call, at *attempt) error {
	cc, err := c.conn(ctx, call, at)
	if err != nil {
		return err
	}
	err = cc.roundTrip(ctx, call, &at.sent)
	at.finish(spi.DoneInfo{Err: err, Duration: time.Since(at.start), Sent: at.sent})
	return err
}

// conn picks an instance, avoiding ejected endpoints, and returns a usable
// connection to it. On success the caller must call at.finish when the
// attempt ends; failures conn reports itself.
func (c *Client) conn(ctx context.Context, call *spi.Call, at *attempt) (*clientConn, error) {
	pb := c.picker.Load()
	for pb == nil {
		// A registry client before its first snapshot: wait for it. The
		// picker is read again under c.mu, which setInstances holds while
		// it stores the picker and closes updated: a snapshot landing
		// between the load above and this lock cannot be missed.
		c.mu.Lock()
		pb = c.picker.Load()
		ch, closed := c.updated, c.closed
		c.mu.Unlock()
		if pb != nil {
			break
		}
		if closed {
			return nil, spi.Errorf(spi.Unavailable, "client closed")
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, spi.WrapError(spi.CodeOf(ctx.Err()), ctx.Err(), "waiting for instances of %q", c.service())
		}
		pb = c.picker.Load()
	}
	if err := c.res.pick(ctx, pb.p, call, at); err != nil {
		return nil, err
	}
	at.start = time.Now()
	// Filters see where the call went (metrics' peer label, tracing).
	call.Peer = at.addr
	ep := c.endpoint(at.addr)
	if ep == nil {
		err := spi.Errorf(spi.Unavailable, "instance %s was removed", at.addr)
		at.finish(spi.DoneInfo{Err: err})
		return nil, err
	}
	cc, err := ep.get(ctx)
	if err != nil {
		at.finish(spi.DoneInfo{Err: err, Duration: time.Since(at.start)})
		return nil, err
	}
	return cc, nil
}

func (c *Client) endpoint(addr string) *endpoint {
	c.mu.Lock()
	ep := c.endpoints[addr]
	if ep == nil && !c.closed {
		// A picker may offer an address the client has not seen (a custom
		// balancer); give it a pool too.
		ep = newEndpoint(c, addr)
		c.endpoints[addr] = ep
	}
	c.mu.Unlock()
	return ep
}

// Instances returns the instances the client currently balances over.
func (c *Client) Instances() []spi.Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]spi.Instance(nil), c.instances...)
}

// SetBalancer swaps the balancer; calls in flight finish on the old
// picker, new calls use the new one.
func (c *Client) SetBalancer(b spi.Balancer) {
	c.mu.Lock()
	c.opts.Balancer = b
	ins := c.instances
	c.mu.Unlock()
	c.setInstances(ins)
}

// setInstances installs a new instance list: a new picker, pools for new
// endpoints, and retirement of endpoints that left.
func (c *Client) setInstances(ins []spi.Instance) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.instances = append([]spi.Instance(nil), ins...)
	keep := make(map[string]bool, len(ins))
	for _, in := range ins {
		keep[in.Addr] = true
		if c.endpoints[in.Addr] == nil {
			c.endpoints[in.Addr] = newEndpoint(c, in.Addr)
		}
	}
	var gone []*endpoint
	for addr, ep := range c.endpoints {
		if !keep[addr] {
			gone = append(gone, ep)
			delete(c.endpoints, addr)
		}
	}
	c.picker.Store(&pickerBox{p: c.opts.Balancer.Build(c.instances)})
	close(c.updated)
	c.updated = make(chan struct{})
	c.res.retain(ins) // under c.mu, so that updates apply in order
	c.mu.Unlock()
	for _, ep := range gone {
		ep.retire()
	}
}

// watchLoop follows the registry. When the registry fails, the last known
// instances stay in use and the watch is re-established with backoff.
func (c *Client) watchLoop(ctx context.Context, reg spi.Registry, service string) {
	defer c.wg.Done()
	attempt := 0
	for ctx.Err() == nil {
		w, err := reg.Watch(ctx, service)
		if err == nil {
			for {
				var ins []spi.Instance
				ins, err = w.Next(ctx)
				if err != nil {
					break
				}
				if ctx.Err() != nil {
					break // superseded by SetDiscovery: do not apply
				}
				attempt = 0
				c.setInstances(ins)
			}
			w.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		attempt++
		d := resilience.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}.Duration(attempt)
		c.log.Warn("registry watch failed; keeping the last known instances", "service", service, "error", err, "retry_in", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// janitorLoop sends heartbeats, detects dead peers and closes idle
// connections.
func (c *Client) janitorLoop() {
	defer c.wg.Done()
	period := time.Second
	if c.opts.HeartbeatInterval > 0 {
		period = min(c.opts.HeartbeatInterval, c.opts.HeartbeatTimeout) / 2
	}
	if c.opts.IdleTimeout > 0 {
		period = min(period, c.opts.IdleTimeout/2)
	}
	period = max(period, 5*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		eps := make([]*endpoint, 0, len(c.endpoints))
		for _, ep := range c.endpoints {
			eps = append(eps, ep)
		}
		c.mu.Unlock()
		now := time.Now().UnixNano()
		for _, ep := range eps {
			for _, cc := range ep.conns() {
				c.tend(cc, now)
			}
		}
	}
}

func (c *Client) tend(cc *clientConn, now int64) {
	if cc.dead.Load() {
		return
	}
	if c.opts.HeartbeatInterval > 0 {
		if sent := cc.pingSentAt.Load(); sent != 0 {
			if cc.lastRead.Load() < sent && now-sent > int64(c.opts.HeartbeatTimeout) {
				c.log.Warn("peer did not answer a heartbeat; closing connection", "addr", cc.addr, "timeout", c.opts.HeartbeatTimeout)
				cc.close(spi.Errorf(spi.Unavailable, "connection to %s: no heartbeat answer within %s (dead peer)", cc.addr, c.opts.HeartbeatTimeout))
				return
			}
		} else if now-cc.lastRead.Load() > int64(c.opts.HeartbeatInterval) {
			cc.pingSentAt.Store(now)
			var b [8]byte
			_ = cc.w.write(protocol.AppendControl(nil, protocol.TypePing, 0, b[:]))
		}
	}
	if c.opts.IdleTimeout > 0 && now-cc.lastUsed.Load() > int64(c.opts.IdleTimeout) {
		cc.mu.Lock()
		idle := len(cc.pending) == 0 && len(cc.streams) == 0
		cc.mu.Unlock()
		if idle {
			cc.idleClosed.Store(true)
			cc.close(spi.Errorf(spi.Unavailable, "connection to %s closed after idle timeout", cc.addr))
		}
	}
}

// Close stops the client: the registry watch and heartbeats end and every
// connection is closed; calls in flight fail with Unavailable.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	eps := c.endpoints
	c.endpoints = map[string]*endpoint{}
	close(c.updated)
	c.mu.Unlock()
	c.cancel()
	for _, ep := range eps {
		ep.closeAll(spi.Errorf(spi.Unavailable, "client closed"))
	}
	c.wg.Wait()
	return nil
}

// endpoint is the connection pool for one address.
//
// A slot whose connection fails, or drains after the server's GOAWAY, is
// redialed in the background (heal) with the reconnect backoff, so that
// a pool recovers while no call is looking at it: an endpoint ejected by
// its breaker has a connection ready when its probe comes, and a restarted
// server is reconnected without a failed call. Slots closed for idleness
// stay empty until a call needs them.
type endpoint struct {
	c    *Client
	addr string
	next atomic.Uint32

	mu       sync.Mutex
	slots    []*clientConn
	draining []*clientConn // replaced after GOAWAY, finishing their calls
	failures int
	retryAt  time.Time
	lastErr  error
	retired  bool
	healing  bool // a heal goroutine runs
}

func newEndpoint(c *Client, addr string) *endpoint {
	return &endpoint{c: c, addr: addr, slots: make([]*clientConn, c.opts.ConnsPerEndpoint)}
}

// conns returns the live connections, draining ones included (they still
// need heartbeats), and forgets draining ones that have closed.
func (ep *endpoint) conns() []*clientConn {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	out := make([]*clientConn, 0, len(ep.slots)+len(ep.draining))
	for _, cc := range ep.slots {
		if cc != nil {
			out = append(out, cc)
		}
	}
	ep.draining = slices.DeleteFunc(ep.draining, func(cc *clientConn) bool { return cc.dead.Load() })
	return append(out, ep.draining...)
}

// get returns a usable connection, dialing one if its slot is empty or
// dead, unless the endpoint is in reconnect backoff.
func (ep *endpoint) get(ctx context.Context) (*clientConn, error) {
	n := uint32(len(ep.slots))
	i := ep.next.Add(1) % n
	ep.mu.Lock()
	cc := ep.slots[i]
	if cc != nil && cc.usable() {
		ep.mu.Unlock()
		return cc, nil
	}
	defer ep.mu.Unlock()
	if ep.retired {
		return nil, spi.Errorf(spi.Unavailable, "endpoint %s was removed", ep.addr)
	}
	wait := time.Until(ep.retryAt)
	if wait > 0 || broken(cc) {
		// In reconnect backoff no dial is due, and a broken slot is being
		// redialed by heal: share another live connection if any rather
		// than make the call wait for a dial.
		for _, o := range ep.slots {
			if o != nil && o.usable() {
				return o, nil
			}
		}
	}
	if wait > 0 {
		return nil, spi.WrapError(spi.Unavailable, ep.lastErr, "endpoint %s unreachable (redial in %s): %v", ep.addr, wait.Round(time.Millisecond), ep.lastErr)
	}
	nc, err := ep.dial(ctx)
	if err != nil {
		code := spi.Unavailable
		if ctx.Err() != nil {
			// The caller's deadline ended the dial, not the endpoint: a
			// call with a 1 ns deadline must not put the endpoint into
			// reconnect backoff for the calls that have time.
			code = spi.CodeOf(ctx.Err())
		} else {
			ep.dialFailedLocked(err)
		}
		return nil, spi.WrapError(code, err, "connecting to %s: %v", ep.addr, err)
	}
	return ep.installLocked(int(i), nc), nil
}

func (ep *endpoint) dial(ctx context.Context) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, ep.c.opts.ConnectTimeout)
	defer cancel()
	if ep.c.comp != nil && ep.c.protocol == spi.ProtocolGRPC {
		dctx = context.WithValue(dctx, dialCompressorKey{}, ep.c.comp)
	}
	return transportFor(ep.addr, ep.c.opts.Transport).Dial(dctx, ep.addr)
}

func (ep *endpoint) dialFailedLocked(err error) {
	ep.failures++
	ep.lastErr = err
	ep.retryAt = time.Now().Add(resilience.Backoff{Min: ep.c.opts.ReconnectBackoffMin, Max: ep.c.opts.ReconnectBackoffMax}.Duration(ep.failures))
}

// installLocked puts a new connection in slot i. The backoff is not
// reset here but when the connection reads its first frame (connProven):
// a listener that accepts and hangs up must not look like a recovery. The
// one it replaces is
// either dead or draining after GOAWAY: a draining one keeps its calls
// and closes after the last (maybeRetire runs as each ends); it is kept
// in draining so that heartbeats and Close still reach it.
func (ep *endpoint) installLocked(i int, nc net.Conn) *clientConn {
	fresh := newClientConn(ep.c, ep, nc)
	if old := ep.slots[i]; old != nil && !old.dead.Load() {
		ep.draining = append(ep.draining, old)
	}
	ep.slots[i] = fresh
	return fresh
}

// broken reports whether a slot's connection should be redialed.
func broken(cc *clientConn) bool {
	return cc != nil && !cc.usable() && !cc.idleClosed.Load()
}

// connProven is called when a connection reads its first frame: the
// endpoint answers, so the reconnect backoff starts over.
func (ep *endpoint) connProven() {
	ep.mu.Lock()
	ep.failures = 0
	ep.lastErr = nil
	ep.mu.Unlock()
}

// connLost is called when one of the endpoint's connections closed or
// received GOAWAY: heal the pool in the background. A connection that
// closed before reading a single frame (early) counts as a failed dial.
func (ep *endpoint) connLost(early bool, reason error) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if early {
		ep.dialFailedLocked(reason)
	}
	if ep.retired || ep.healing || ep.c.ctx.Err() != nil {
		return
	}
	ep.healing = true
	// Close cancels ctx before it waits for wg, and sets retired under
	// ep.mu (closeAll) before that: no Add can follow the Wait.
	ep.c.wg.Add(1)
	go ep.heal()
}

// heal redials broken slots, waiting out the reconnect backoff between
// failed dials, until none is broken, the endpoint is retired or the
// client closes.
func (ep *endpoint) heal() {
	defer ep.c.wg.Done()
	ctx := ep.c.ctx
	for {
		ep.mu.Lock()
		slot := -1
		if !ep.retired {
			for i, cc := range ep.slots {
				if broken(cc) {
					slot = i
					break
				}
			}
		}
		if slot < 0 {
			ep.healing = false
			ep.mu.Unlock()
			return
		}
		wait := time.Until(ep.retryAt)
		ep.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				ep.mu.Lock()
				ep.healing = false
				ep.mu.Unlock()
				return
			case <-t.C:
			}
			continue
		}
		// Dial without the lock: calls may still use the other slots.
		nc, err := ep.dial(ctx)
		ep.mu.Lock()
		switch {
		case ctx.Err() != nil:
			if nc != nil {
				_ = nc.Close()
			}
			ep.healing = false
			ep.mu.Unlock()
			return
		case err != nil:
			ep.dialFailedLocked(err)
		case ep.retired || !broken(ep.slots[slot]):
			_ = nc.Close() // closed meanwhile, or a call redialed it first
		default:
			ep.installLocked(slot, nc)
			ep.c.log.Debug("reconnected", "addr", ep.addr, "slot", slot)
		}
		ep.mu.Unlock()
	}
}

// retire closes the pool once its calls finish (the instance left).
func (ep *endpoint) retire() {
	ep.mu.Lock()
	ep.retired = true
	slots := append(slices.Clone(ep.slots), ep.draining...)
	ep.mu.Unlock()
	for _, cc := range slots {
		if cc != nil {
			cc.goaway.Store(true)
			cc.maybeRetire()
		}
	}
}

func (ep *endpoint) closeAll(reason error) {
	ep.mu.Lock()
	ep.retired = true
	slots := append(slices.Clone(ep.slots), ep.draining...)
	ep.mu.Unlock()
	for _, cc := range slots {
		if cc != nil {
			cc.shutdown(reason)
		}
	}
}

// weightedRR is core's own default balancer, used when the catalog has no
// "weighted" balancer (core cannot import plugins/lb-weighted; the kite
// package links it): smooth weighted round-robin over the instances'
// effective weights, the order lb-weighted picks in (without its slow
// start). One period is computed per Build, so a pick is one atomic
// increment; with equal weights it is plain round-robin.
type weightedRR struct{}

// weightedRRPeriod caps a period's length; larger weight sums are scaled
// down in proportion (balancerkit.PeriodWeights).
const weightedRRPeriod = 1 << 12

func (weightedRR) Name() string { return defaults.Balancer }

func (weightedRR) Build(ins []spi.Instance) spi.Picker {
	if len(ins) == 0 {
		return balancerkit.Empty
	}
	w, total := balancerkit.PeriodWeights(ins, weightedRRPeriod)
	cur := make([]int, len(w))
	sched := make([]int32, total)
	for k := range sched {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		sched[k] = int32(best)
	}
	return &wrrPicker{ins: slices.Clone(ins), sched: sched}
}

type wrrPicker struct {
	ins   []spi.Instance
	sched []int32 // one period of instance indexes
	next  atomic.Uint64
}

func (p *wrrPicker) Pick(_ context.Context, info spi.PickInfo) (spi.PickResult, error) {
	n := uint64(len(p.sched))
	start := p.next.Add(1) - 1
	if len(info.Exclude) > 0 {
		// Walk on through the period to an instance not tried yet.
		for k := uint64(0); k < n; k++ {
			in := p.ins[p.sched[(start+k)%n]]
			if !excluded(info.Exclude, in.Addr) {
				return spi.PickResult{Instance: in}, nil
			}
		}
	}
	return spi.PickResult{Instance: p.ins[p.sched[start%n]]}, nil
}

func excluded(list []string, addr string) bool {
	for _, a := range list {
		if a == addr {
			return true
		}
	}
	return false
}

type mdKey struct{}
type excludeKey struct{}

// WithMetadata returns a context whose calls carry md as request metadata.
func WithMetadata(ctx context.Context, md *spi.Metadata) context.Context {
	return context.WithValue(ctx, mdKey{}, md)
}

// callWithMD is a call and its metadata in one allocation.
type callWithMD struct {
	call spi.Call
	md   spi.Metadata
}

// newCall returns c with Meta set to a copy of ctx's outgoing metadata,
// empty when there is none: filters may always read and write
// call.Meta, compiled in as out of process (where it is never nil).
func newCall(ctx context.Context, c spi.Call) *spi.Call {
	cm := &callWithMD{call: c}
	if md, _ := ctx.Value(mdKey{}).(*spi.Metadata); md != nil {
		cm.md.CopyFrom(md)
	}
	cm.call.Meta = &cm.md
	return &cm.call
}

func excludedFrom(ctx context.Context) []string {
	ex, _ := ctx.Value(excludeKey{}).([]string)
	return ex
}

// String describes the client for logs.
func (c *Client) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opts.Registry != nil {
		return fmt.Sprintf("kite client for %q via registry", c.opts.Service)
	}
	return fmt.Sprintf("kite client for %v", c.opts.Targets)
}

func (c *Client) service() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opts.Service
}
