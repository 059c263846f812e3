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
	// Registerer receives the collectors; nil means the package Registerer.
	Registerer prometheus.Registerer
}

// Filter records Prometheus metrics for every call it wraps. One Filter may
// sit in client and server chains at once: the side comes from each call.
type Filter struct {
	peer     bool
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight *prometheus.GaugeVec

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
			side, peer := call.Side.String(), peerOf(call)
			f.calls.WithLabelValues(side, call.Method, code.String(), peer).Inc()
			f.duration.WithLabelValues(side, call.Method, peer).Observe(secs)
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
func peerOf(call *spi.Call) string {
	if call.Side == spi.ServerSide {
		if host, _, err := net.SplitHostPort(call.Peer); err == nil {
			return host
		}
	}
	return call.Peer
}

type config struct {
	Namespace string    `json:"namespace"`
	Buckets   []float64 `json:"buckets"`
	PeerLabel bool      `json:"peer_label"`
}

// New builds the filter from its kite.hcl block.
func New(cfg spi.Config) (any, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	return NewFilter(Options{Namespace: c.Namespace, Buckets: c.Buckets, PeerLabel: c.PeerLabel})
}

func init() {
	spi.Register(spi.Entry{
		Kind: spi.KindFilter, Name: "metrics", Version: "1.0.0",
		Doc: "Prometheus calls, latency and in-flight per side, method (and peer)",
		Schema: spi.Schema{
			{Name: "namespace", Type: spi.TypeString, Doc: `metric name prefix (default "kite")`},
			{Name: "buckets", Type: spi.FieldType("list(number)"), Doc: "latency histogram bounds in seconds (default 100µs..10s)"},
			{Name: "peer_label", Type: spi.TypeBool, Doc: "label calls and latency with the peer (default false: bounded cardinality)"},
		},
		New: New,
	})
}
