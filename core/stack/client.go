package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/spi"
)

// ClientOption adjusts one Client built from a client block.
type ClientOption func(*clientSettings)

type clientSettings struct {
	codec     spi.Codec
	codecName string
	timeout   time.Duration
}

// ClientTimeout replaces the block's timeout, and its method blocks'
// timeouts, with d for this client (tools use it for a -timeout flag).
// A reload of the file does not undo it.
func ClientTimeout(d time.Duration) ClientOption {
	return func(s *clientSettings) { s.timeout = d }
}

// ClientCodec makes the client encode requests with c instead of the
// block's codec (tools such as `kite call` use JSON whatever the block
// says; servers answer every caller in its own codec).
func ClientCodec(c spi.Codec) ClientOption {
	return func(s *clientSettings) { s.codec = c }
}

// ClientCodecName is ClientCodec with a codec block label or
// implementation name, built like the block's own codec would be.
func ClientCodecName(ref string) ClientOption {
	return func(s *clientSettings) { s.codecName = ref }
}

// managedClient is a client built by the stack, with the settings a
// reload may change in place.
type managedClient struct {
	name     string
	client   *core.Client
	cfg      *config.ClientConfig
	balancer *config.Component
	timeouts *timeoutFilter
}

// Client builds the core.Client of the `client "<name>"` block: service,
// fixed targets or registry + balancer, codec, compression, timeouts,
// connection pool, heartbeats and filters. Close closes it (and so does
// the stack's Close). Reload updates its balancer and timeouts in place.
func (st *Stack) Client(name string, opts ...ClientOption) (*core.Client, error) {
	var set clientSettings
	for _, o := range opts {
		o(&set)
	}
	f := st.File()
	cfg, ok := f.Client(name)
	if !ok {
		return nil, fmt.Errorf("%s: no client block named %q (clients: %v)", f.Filename, name, clientNames(f))
	}
	at := func(attr string) hcl.Range {
		if r, ok := cfg.Ranges[attr]; ok {
			return r
		}
		return cfg.DeclRange
	}
	co := core.ClientOptions{
		Service:          cfg.Service,
		Targets:          cfg.Target,
		Catalog:          st.cat,
		ConnectTimeout:   cfg.ConnectTimeout,
		ConnsPerEndpoint: cfg.Pool.ConnsPerEndpoint,
		IdleTimeout:      cfg.Pool.IdleTimeout,
		// Timeouts are applied by the stack's outermost filter instead
		// of ClientOptions.Timeout, so a reload can change them and
		// method blocks can override them.
		HeartbeatInterval: cfg.Heartbeat.Interval,
		HeartbeatTimeout:  cfg.Heartbeat.Timeout,
		Logger:            st.log.Named(name),
	}
	if co.IdleTimeout == 0 {
		co.IdleTimeout = -1 // kite.hcl: 0 = never; core: negative disables
	}
	if co.HeartbeatInterval == 0 {
		co.HeartbeatInterval = -1 // kite.hcl: "0s" turns heartbeats off
	}
	var err error
	switch {
	case set.codec != nil:
		co.Codec = set.codec
	case set.codecName != "":
		co.Codec, err = st.codec(f, set.codecName, cfg.DeclRange)
	default:
		co.Codec, err = st.codec(f, cfg.Codec, at("codec"))
	}
	if err != nil {
		return nil, err
	}
	if cfg.Compression != nil {
		if co.Compressor, err = st.compressor(f, cfg.Compression.Name, at("compression.name")); err != nil {
			return nil, err
		}
		co.CompressThreshold = int(cfg.Compression.Threshold)
		if co.CompressThreshold == 0 {
			co.CompressThreshold = 1
		}
	}
	if co.Transport, err = st.transport(cfg.Transport, nil, cfg.TLS, at("transport")); err != nil {
		return nil, err
	}
	if cfg.GRPC != nil || cfg.Transport == "grpc" {
		tlsAt := at("tls.ca")
		if cfg.TLS != nil && cfg.TLS.CA == "" {
			tlsAt = at("tls.cert")
		}
		if co.Transport, err = grpcTransport(cfg.GRPC, cfg.TLS, tlsAt); err != nil { // grpc.go
			return nil, err
		}
	}
	var balComp *config.Component
	if co.Balancer, balComp, err = st.balancer(f, cfg.Balancer, at("balancer")); err != nil {
		return nil, err
	}
	if len(cfg.Target) == 0 {
		if co.Registry, err = st.registry(f, cfg.Registry, at("registry")); err != nil {
			return nil, err
		}
	}
	filters, err := st.filters(f, cfg.Filters, at("filters"))
	if err != nil {
		return nil, err
	}
	tf := newTimeoutFilter(cfg)
	if set.timeout > 0 {
		tf.fixed = true
		tf.cur.Store(&timeouts{def: set.timeout})
	}
	co.Filters = append([]spi.Filter{tf}, filters...)
	applyResilience(&co, cfg)

	c, err := core.NewClient(co)
	if err != nil {
		return nil, fmt.Errorf("%s: client %q: %w", pos(cfg.DeclRange), name, err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		_ = c.Close()
		return nil, errors.New("stack: closed")
	}
	st.clients[c] = &managedClient{name: name, client: c, cfg: cfg, balancer: balComp, timeouts: tf}
	return c, nil
}

// applyResilience maps the block's retry, breaker and method blocks onto
// the client's retry layer. Timeouts are left to the stack's timeoutFilter
// (ClientOptions.Timeout and MethodOptions.Timeout stay 0), which bounds
// the whole call, retries included, and which Reload can change.
// kite.hcl's budget = 0 means "no retries", where the retry layer would
// read a zero budget as its default, so it becomes max_attempts = 1.
func applyResilience(co *core.ClientOptions, cfg *config.ClientConfig) {
	rs := retrySettings(cfg)
	co.Retry, co.RetryCodes, co.Methods = rs.Retry, rs.RetryCodes, rs.Methods
	co.Breaker = breakerConfig(cfg.Breaker)
}

// retrySettings is the client's retry block and method blocks as core's
// retry settings (timeouts are the stack's timeout filter's, not core's).
func retrySettings(cfg *config.ClientConfig) core.RetrySettings {
	rs := core.RetrySettings{
		Retry:      retryPolicy(cfg.Retry),
		RetryCodes: append([]spi.Code(nil), cfg.Retry.Codes...),
	}
	if len(cfg.Methods) == 0 {
		return rs
	}
	rs.Methods = make(map[string]core.MethodOptions, len(cfg.Methods))
	for _, m := range cfg.Methods {
		rs.Methods[m.Name] = core.MethodOptions{
			Idempotent: m.Idempotent,
			Retry:      retryPolicy(m.Retry),
			RetryCodes: append([]spi.Code(nil), m.Retry.Codes...),
		}
	}
	return rs
}

// breakerConfig maps a breaker block onto the resilience package's
// config. kite.hcl turns a trigger off with 0 and the breaker with
// enabled = false; resilience reads 0 as "default" and turns a trigger
// off when negative.
func breakerConfig(b config.Breaker) *resilience.BreakerConfig {
	bc := &resilience.BreakerConfig{
		ConsecutiveFailures: b.ConsecutiveFailures,
		FailureRatio:        b.FailureRatio,
		Window:              b.Window,
		MinRequests:         b.MinRequests,
		BaseEjection:        b.BaseEjection,
		MaxEjection:         b.MaxEjection,
		HalfOpenProbes:      b.HalfOpenProbes,
		MaxEjectionPercent:  b.MaxEjectionPercent,
	}
	if !b.Enabled || bc.ConsecutiveFailures <= 0 {
		bc.ConsecutiveFailures = -1
	}
	if !b.Enabled || bc.FailureRatio <= 0 {
		bc.FailureRatio = -1
	}
	return bc
}

func retryPolicy(r config.Retry) *resilience.Policy {
	p := &resilience.Policy{MaxAttempts: r.MaxAttempts, Budget: r.Budget}
	if r.BackoffMin > 0 || r.BackoffMax > 0 {
		p.Backoff = r.BackoffMin.String() + ".." + r.BackoffMax.String()
	}
	if r.Budget <= 0 || p.MaxAttempts <= 0 {
		p.MaxAttempts = 1
	}
	return p
}

// forget drops c from the stack's clients (the caller closed it).
func (st *Stack) forget(c *core.Client) {
	st.mu.Lock()
	if st.clients != nil {
		delete(st.clients, c)
	}
	st.mu.Unlock()
}

// CloseClient closes a client built by Client and forgets it.
func (st *Stack) CloseClient(c *core.Client) error {
	st.forget(c)
	return c.Close()
}

func clientNames(f *config.File) []string {
	out := make([]string, 0, len(f.Clients))
	for _, c := range f.Clients {
		out = append(out, c.Name)
	}
	return out
}

// timeouts is one immutable set of per-call deadlines.
type timeouts struct {
	def     time.Duration
	methods map[string]time.Duration
}

func timeoutsOf(cfg *config.ClientConfig) *timeouts {
	t := &timeouts{def: cfg.Timeout}
	for _, m := range cfg.Methods {
		if t.methods == nil {
			t.methods = map[string]time.Duration{}
		}
		t.methods[m.Name] = m.Timeout
	}
	return t
}

func (t *timeouts) equal(o *timeouts) bool {
	if t.def != o.def || len(t.methods) != len(o.methods) {
		return false
	}
	for k, v := range t.methods {
		if w, ok := o.methods[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// timeoutFilter is the outermost client filter: it bounds each call by
// the block's timeout (or its method block's), keeping an earlier
// deadline of the caller's. The settings sit behind an atomic pointer so
// Reload can change them under load; a call reads them once.
type timeoutFilter struct {
	cur atomic.Pointer[timeouts]
	// fixed is set when the builder overrode the timeouts (ClientTimeout);
	// reloads then leave them alone.
	fixed bool
}

func newTimeoutFilter(cfg *config.ClientConfig) *timeoutFilter {
	f := &timeoutFilter{}
	f.cur.Store(timeoutsOf(cfg))
	return f
}

func (f *timeoutFilter) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		// One-way calls end when queued and a stream's context is its
		// lifetime: neither gets a per-call deadline.
		if call.OneWay || call.Stream {
			return next(ctx, call)
		}
		t := f.cur.Load()
		d := t.def
		if md, ok := t.methods[call.Method]; ok {
			d = md
		}
		if d <= 0 {
			return next(ctx, call)
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return next(ctx, call)
	}
}

// sameComponent reports whether two resolved components would build the
// same thing.
func sameComponent(a, b *config.Component) bool {
	if a == nil || b == nil {
		return a == b
	}
	pa, pb := "", ""
	if a.Plugin != nil {
		pa = a.Plugin.Path + "@" + a.Plugin.SHA256
	}
	if b.Plugin != nil {
		pb = b.Plugin.Path + "@" + b.Plugin.SHA256
	}
	return a.Kind == b.Kind && a.Impl == b.Impl && pa == pb && bytes.Equal(normConfig(a.Config), normConfig(b.Config))
}

func normConfig(c spi.Config) []byte {
	if len(c) == 0 {
		return []byte("{}")
	}
	return c
}
