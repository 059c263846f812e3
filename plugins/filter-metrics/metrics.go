package metricsfilter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registerer is where filters built from kite.hcl register their
// collectors. Change it before the stack is built (tests point it at a fresh
// prometheus.Registry); Options.Registerer overrides it per filter.
var Registerer prometheus.Registerer = prometheus.DefaultRegisterer

// DefaultBuckets are the latency buckets in seconds: 100 µs to 10 s, dense
// around the 1–50 ms where most RPCs land, so p50/p99 stay readable.
var DefaultBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// Handler serves the metrics in Registerer in the Prometheus exposition
// format, for an admin endpoint's /metrics. When Registerer is not also a
// Gatherer it serves prometheus.DefaultGatherer.
func Handler() http.Handler {
	g := prometheus.DefaultGatherer
	if rg, ok := Registerer.(prometheus.Gatherer); ok {
		g = rg
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// Options configure a Filter built in code.
type Options struct {
	// Namespace prefixes every metric name; default "kite".
	Namespace string
	// Buckets are the latency histogram's upper bounds in seconds; default
	// DefaultBuckets. When the families already exist in the registry the
	// existing buckets win.
	Buckets []float64
	// PeerLabel adds a peer label to the call counter and the histogram.
	PeerLabel bool
	// MaxPeers bounds the peer label's values (default DefaultMaxPeers):
	// beyond it, calls from new peers are labelled OtherPeer until a
	// labelled peer has been idle for PeerTTL and gives up its slot.
	MaxPeers int
	// PeerTTL is how long a peer stays labelled without calls once the
	// table is full (default DefaultPeerTTL); its series are then deleted.
	PeerTTL time.Duration
	// Registerer receives the collectors; nil means the package Registerer.
	Registerer prometheus.Registerer
}

// Defaults of the peer label's bound.
const (
	DefaultMaxPeers = 256
	DefaultPeerTTL  = 10 * time.Minute
)

// OtherMethod is the method label of calls to a method the server does
// not have: the name a caller sends is unbounded, so it is never a label
// (OpenTelemetry's rpc.method uses the same value).
const OtherMethod = "_OTHER"

// Filter records Prometheus metrics for every call it wraps. One Filter may
// sit in client and server chains at once: the side comes from each call.
type Filter struct {
	peer     bool
	peers    *peerTable // nil without the peer label
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
	rejected *prometheus.CounterVec

	mu     sync.Mutex                         // serialises cache inserts
	series [3]atomic.Pointer[map[string]*set] // by spi.Side: copy-on-write caches
}

// set holds one (side, method)'s resolved series so the per-call path does
// no label hashing.
type set struct {
	inflight prometheus.Gauge
	duration prometheus.Observer
	calls    [numCodes]atomic.Pointer[prometheus.Counter] // resolved on first use
}

const numCodes = int(spi.Unauthenticated) + 1

// NewFilter builds a filter and registers (or reuses) its collectors.
func NewFilter(o Options) (*Filter, error) {
	ns := o.Namespace
	if ns == "" {
		ns = "kite"
	}
	buckets := o.Buckets
	if len(buckets) == 0 {
		buckets = DefaultBuckets
	}
	if err := checkBuckets(buckets); err != nil {
		return nil, err
	}
	reg := o.Registerer
	if reg == nil {
		reg = Registerer
	}
	callLabels := []string{"side", "method", "code"}
	durLabels := []string{"side", "method"}
	if o.PeerLabel {
		callLabels = append(callLabels, "peer")
		durLabels = append(durLabels, "peer")
	}
	if o.MaxPeers < 0 || o.PeerTTL < 0 {
		return nil, fmt.Errorf("max_peers and peer_ttl must not be negative (got %d, %s)", o.MaxPeers, o.PeerTTL)
	}
	f := &Filter{peer: o.PeerLabel}
	var err error
	f.calls, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "rpc", Name: "calls_total",
		Help: "Calls finished, by side, method and status code.",
	}, callLabels))
	if err != nil {
		return nil, err
	}
	f.duration, err = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Subsystem: "rpc", Name: "duration_seconds",
		Help:    "Call latency in seconds as seen by the filter, by side and method.",
		Buckets: buckets,
	}, durLabels))
	if err != nil {
		return nil, err
	}
	f.inflight, err = register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: "rpc", Name: "in_flight",
		Help: "Calls in progress, by side and method.",
	}, []string{"side", "method"}))
	if err != nil {
		return nil, err
	}
	f.rejected, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "rpc", Name: "server_rejected_total",
		Help: "Calls a server refused before its filter chain, by method, status code and reason (also counted in calls_total).",
	}, []string{"method", "code", "reason"}))
	if err != nil {
		return nil, err
	}
	if o.PeerLabel {
		max, ttl := o.MaxPeers, o.PeerTTL
		if max == 0 {
			max = DefaultMaxPeers
		}
		if ttl == 0 {
			ttl = DefaultPeerTTL
		}
		f.peers = newPeerTable(max, ttl, func(peer string) {
			f.calls.DeletePartialMatch(prometheus.Labels{"peer": peer})
			f.duration.DeletePartialMatch(prometheus.Labels{"peer": peer})
		})
	}
	return f, nil
}

// register registers c, or returns the equal collector already registered
// so that filters built twice in one process share their series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
		return c, fmt.Errorf("metrics: a different collector of type %T is registered under the same name", are.ExistingCollector)
	}
	// Typically the same name with other labels: one filter with
	// peer_label and one without, or another library's metric.
	return c, fmt.Errorf("metrics: registering collector: %w (filters sharing a namespace must agree on peer_label)", err)
}

func checkBuckets(b []float64) error {
	for i, v := range b {
		if v <= 0 {
			return fmt.Errorf("buckets: %g is not a positive number of seconds", v)
		}
		if i > 0 && v <= b[i-1] {
			return fmt.Errorf("buckets: must increase strictly (%g after %g)", v, b[i-1])
		}
	}
	return nil
}

// MetadataOnly implements spi.MetadataFilter: it counts by method and code, never reads the request,
// so it does not hold back authentication before decoding.
func (*Filter) MetadataOnly() {}

// Wrap implements spi.Filter.
func (f *Filter) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		s := f.lookup(call.Side, call.Method)
		s.inflight.Inc()
		start := time.Now()
		err := next(ctx, call)
		secs := time.Since(start).Seconds()
		s.inflight.Dec()
		code := spi.CodeOf(err)
		if f.peer {
			side := call.Side.String()
			f.peers.record(peerOf(call.Side, call.Peer), func(peer string) {
				f.calls.WithLabelValues(side, call.Method, code.String(), peer).Inc()
				f.duration.WithLabelValues(side, call.Method, peer).Observe(secs)
			})
			return err
		}
		s.duration.Observe(secs)
		s.counter(f, call.Side, call.Method, code).Inc()
		return err
	}
}

// lookup returns the cached series of (side, method), resolving them on
// first sight. Methods are a bounded set (the services' tables), so the
// copy-on-write cache stays small and reads are a pointer load and a map
// lookup.
func (f *Filter) lookup(side spi.Side, method string) *set {
	i := int(side) % len(f.series)
	if m := f.series[i].Load(); m != nil {
		if s, ok := (*m)[method]; ok {
			return s
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.series[i].Load()
	if old != nil {
		if s, ok := (*old)[method]; ok {
			return s
		}
	}
	sd := side.String()
	s := &set{inflight: f.inflight.WithLabelValues(sd, method)}
	if !f.peer {
		s.duration = f.duration.WithLabelValues(sd, method)
	}
	m := make(map[string]*set, len(mapOrNil(old))+1)
	for k, v := range mapOrNil(old) {
		m[k] = v
	}
	m[method] = s
	f.series[i].Store(&m)
	return s
}

func mapOrNil(p *map[string]*set) map[string]*set {
	if p == nil {
		return nil
	}
	return *p
}

// counter returns the calls_total child for code, resolving it once.
// Children are created lazily so /metrics shows only codes that happened.
func (s *set) counter(f *Filter, side spi.Side, method string, code spi.Code) prometheus.Counter {
	if int(code) >= numCodes {
		return f.calls.WithLabelValues(side.String(), method, code.String())
	}
	if c := s.calls[code].Load(); c != nil {
		return *c
	}
	c := f.calls.WithLabelValues(side.String(), method, code.String())
	s.calls[code].Store(&c) // a racing store holds the same child
	return c
}

// peerOf is the peer label: the caller's host on the server (its port is
// ephemeral), the instance address on the client.
func peerOf(side spi.Side, peer string) string {
	if side == spi.ServerSide {
		if host, _, err := net.SplitHostPort(peer); err == nil {
			return host
		}
	}
	return peer
}

// CallRejected implements spi.RejectObserver: a call the server refused
// before its chain (unknown method, draining, admission limits) counts in
// calls_total with the code the caller got, and in server_rejected_total
// with the reason. An unknown method is labelled OtherMethod.
func (f *Filter) CallRejected(r *spi.Rejection) {
	method := r.Method
	if !r.Known {
		method = OtherMethod
	}
	code := spi.CodeOf(r.Err).String()
	f.rejected.WithLabelValues(method, code, r.Reason).Inc()
	side := spi.ServerSide.String()
	if f.peer {
		f.peers.record(peerOf(spi.ServerSide, r.Peer), func(peer string) {
			f.calls.WithLabelValues(side, method, code, peer).Inc()
		})
		return
	}
	f.calls.WithLabelValues(side, method, code).Inc()
}

type config struct {
	Namespace string    `json:"namespace"`
	Buckets   []float64 `json:"buckets"`
	PeerLabel bool      `json:"peer_label"`
	MaxPeers  int       `json:"max_peers"`
	PeerTTL   string    `json:"peer_ttl"`
}

// New builds the filter from its kite.hcl block.
func New(cfg spi.Config) (any, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	o := Options{Namespace: c.Namespace, Buckets: c.Buckets, PeerLabel: c.PeerLabel, MaxPeers: c.MaxPeers}
	if c.PeerTTL != "" {
		d, err := time.ParseDuration(c.PeerTTL)
		if err != nil {
			return nil, fmt.Errorf("peer_ttl: %w", err)
		}
		o.PeerTTL = d
	}
	return NewFilter(o)
}

func init() {
	spi.Register(spi.Entry{
		Kind: spi.KindFilter, Name: "metrics", Version: "1.1.0",
		Doc: "Prometheus calls, latency and in-flight per side, method (and peer)",
		Schema: spi.Schema{
			{Name: "namespace", Type: spi.TypeString, Doc: `metric name prefix (default "kite")`},
			{Name: "buckets", Type: spi.FieldType("list(number)"), Doc: "latency histogram bounds in seconds (default 100µs..10s)"},
			{Name: "peer_label", Type: spi.TypeBool, Doc: "label calls and latency with the peer (default false: bounded cardinality)"},
			{Name: "max_peers", Type: spi.TypeNumber, Doc: `with peer_label: at most this many peer values, later ones are "_other" (default 256)`},
			{Name: "peer_ttl", Type: spi.TypeDuration, Doc: `with peer_label: a peer idle this long gives up its slot and its series are deleted (default "10m")`},
		},
		New: New,
	})
}
