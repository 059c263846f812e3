package config

import (
	"crypto/tls"
	"time"

	"github.com/kiterpc/kite/core/defaults"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/spi"
)

// Documented defaults: each is the core/defaults table's value (the one
// table the Go API reads too), under the name this package has always used.
const (
	DefaultRegistry  = defaults.Registry
	DefaultTransport = defaults.Transport
	DefaultCodec     = defaults.Codec
	DefaultBalancer  = defaults.Balancer

	DefaultShutdownTimeout = defaults.ShutdownTimeout

	DefaultMaxConcurrency  = defaults.MaxConcurrency
	DefaultMaxConnConc     = defaults.MaxConnConcurrency
	DefaultHandshake       = defaults.HandshakeTimeout
	DefaultMaxFrame        = defaults.MaxFrame
	DefaultMaxMetadata     = defaults.MaxMetadata
	DefaultMaxConns        = defaults.MaxConns
	DefaultServerIdle      = defaults.ServerIdleTimeout
	DefaultCompressMinSize = defaults.CompressThreshold

	DefaultTimeout        = defaults.Timeout
	DefaultConnectTimeout = defaults.ConnectTimeout

	DefaultMaxAttempts = defaults.RetryMaxAttempts
	DefaultRetryBudget = defaults.RetryBudget

	DefaultConnsPerEndpoint = defaults.ConnsPerEndpoint
	DefaultPoolIdle         = defaults.PoolIdleTimeout

	DefaultHeartbeatInterval = defaults.HeartbeatInterval
	DefaultHeartbeatTimeout  = defaults.HeartbeatTimeout

	DefaultBreakerEnabled             = defaults.BreakerEnabled
	DefaultBreakerConsecutiveFailures = defaults.BreakerConsecutiveFailures
	DefaultBreakerFailureRatio        = defaults.BreakerFailureRatio
	DefaultBreakerWindow              = defaults.BreakerWindow
	DefaultBreakerMinRequests         = defaults.BreakerMinRequests
	DefaultBreakerBaseEjection        = defaults.BreakerBaseEjection
	DefaultBreakerMaxEjection         = defaults.BreakerMaxEjection
	DefaultBreakerMaxEjectionPercent  = defaults.BreakerMaxEjectionPercent
	DefaultBreakerHalfOpenProbes      = defaults.BreakerHalfOpenProbes
)

// DefaultBackoffMin and DefaultBackoffMax are defaults.RetryBackoff's bounds.
var DefaultBackoffMin, DefaultBackoffMax = func() (time.Duration, time.Duration) {
	b, err := resilience.ParseBackoff(defaults.RetryBackoff)
	if err != nil {
		panic("config: defaults.RetryBackoff: " + err.Error())
	}
	return b.Min, b.Max
}()

// DefaultRetryCodes are the status codes retried when a retry block names
// none: nil, every code the retry rule allows (see defaults.RetryCodes).
var DefaultRetryCodes = defaults.RetryCodes

// attrSet records which attributes a block set, by dotted path
// ("timeout", "retry.budget"). Defaults apply only to what is absent, so
// an explicit zero (max_conns = 0, interval = "0s") keeps its meaning.
type attrSet map[string]bool

func (s attrSet) has(path string) bool { return s[path] }

// DefaultServerConfig returns a server named name with every knob at its
// default, for programs that build configuration in Go.
func DefaultServerConfig(name string) *ServerConfig {
	s := &ServerConfig{Name: name}
	s.applyDefaults(nil)
	return s
}

// DefaultClientConfig returns a client named name with every knob at its
// default, for programs that build configuration in Go.
func DefaultClientConfig(name string) *ClientConfig {
	c := &ClientConfig{Name: name}
	c.applyDefaults(nil)
	return c
}

// applyDefaults is the one place server defaults live: every attribute
// the file did not set gets its documented value here.
func (s *ServerConfig) applyDefaults(set attrSet) {
	if !set.has("transport") {
		s.Transport = DefaultTransport
		if s.TLS != nil {
			s.Transport = "tls"
		}
	}
	if !set.has("registry") {
		s.Registry = DefaultRegistry
	}
	if !set.has("codec") {
		s.Codec = DefaultCodec
	}
	if !set.has("service_name") {
		s.ServiceName = s.Name
	}
	if !set.has("weight") {
		s.Weight = spi.DefaultWeight
	}
	if !set.has("shutdown_timeout") {
		s.ShutdownTimeout = DefaultShutdownTimeout
	}
	if !set.has("limits.max_concurrency") {
		s.Limits.MaxConcurrency = DefaultMaxConcurrency
	}
	if !set.has("limits.max_conn_concurrency") {
		s.Limits.MaxConnConcurrency = DefaultMaxConnConc
	}
	if !set.has("limits.handshake_timeout") {
		s.Limits.HandshakeTimeout = DefaultHandshake
	}
	if !set.has("limits.max_frame") {
		s.Limits.MaxFrame = DefaultMaxFrame
	}
	if !set.has("limits.max_metadata") {
		s.Limits.MaxMetadata = DefaultMaxMetadata
	}
	if !set.has("limits.max_conns") {
		s.Limits.MaxConns = DefaultMaxConns
	}
	if !set.has("limits.idle_timeout") {
		s.Limits.IdleTimeout = DefaultServerIdle
	}
	if !set.has("limits.stream_idle_timeout") {
		s.Limits.StreamIdleTimeout = defaults.StreamIdleTimeout
	}
	if !set.has("limits.body_memory") {
		s.Limits.BodyMemory = defaults.BodyMemory
	}
	if !set.has("limits.max_peer_share") {
		s.Limits.MaxPeerShare = defaults.MaxPeerShare
	}
	if !set.has("limits.write_timeout") {
		s.Limits.WriteTimeout = defaults.WriteTimeout
	}
	if s.Compression != nil && !set.has("compression.threshold") {
		s.Compression.Threshold = DefaultCompressMinSize
	}
	if s.TLS != nil && !set.has("tls.client_auth") {
		// A CA is only useful for verifying clients, so naming one asks for mTLS.
		s.TLS.ClientAuth = tls.NoClientCert
		if s.TLS.CA != "" {
			s.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
}

// applyDefaults is the one place client defaults live, including the
// defaults method blocks inherit from their client.
func (c *ClientConfig) applyDefaults(set attrSet) {
	if !set.has("service") {
		c.Service = c.Name
	}
	if !set.has("registry") && len(c.Target) == 0 {
		c.Registry = DefaultRegistry
	}
	if !set.has("balancer") {
		c.Balancer = DefaultBalancer
	}
	if !set.has("codec") {
		c.Codec = DefaultCodec
	}
	if !set.has("transport") {
		c.Transport = DefaultTransport
		if c.TLS != nil {
			c.Transport = "tls"
		}
	}
	if !set.has("timeout") {
		c.Timeout = DefaultTimeout
	}
	if !set.has("connect_timeout") {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	defaultRetry(&c.Retry, set, "retry.", Retry{
		MaxAttempts: DefaultMaxAttempts,
		BackoffMin:  DefaultBackoffMin,
		BackoffMax:  DefaultBackoffMax,
		Budget:      DefaultRetryBudget,
		Codes:       DefaultRetryCodes,
	})
	if !set.has("pool.conns_per_endpoint") {
		c.Pool.ConnsPerEndpoint = DefaultConnsPerEndpoint
	}
	if !set.has("pool.idle_timeout") {
		c.Pool.IdleTimeout = DefaultPoolIdle
	}
	if !set.has("heartbeat.interval") {
		c.Heartbeat.Interval = DefaultHeartbeatInterval
	}
	if !set.has("heartbeat.timeout") {
		c.Heartbeat.Timeout = DefaultHeartbeatTimeout
	}
	c.Breaker.applyDefaults(set)
	if c.Compression != nil && !set.has("compression.threshold") {
		c.Compression.Threshold = DefaultCompressMinSize
	}
	for _, m := range c.Methods {
		p := "method." + m.Name + "."
		if !set.has(p + "timeout") {
			m.Timeout = c.Timeout
		}
		defaultRetry(&m.Retry, set, p+"retry.", c.Retry)
	}
}

func (b *Breaker) applyDefaults(set attrSet) {
	if !set.has("breaker.enabled") {
		b.Enabled = DefaultBreakerEnabled
	}
	if !set.has("breaker.consecutive_failures") {
		b.ConsecutiveFailures = DefaultBreakerConsecutiveFailures
	}
	if !set.has("breaker.failure_ratio") {
		b.FailureRatio = DefaultBreakerFailureRatio
	}
	if !set.has("breaker.window") {
		b.Window = DefaultBreakerWindow
	}
	if !set.has("breaker.min_requests") {
		b.MinRequests = DefaultBreakerMinRequests
	}
	if !set.has("breaker.base_ejection") {
		b.BaseEjection = DefaultBreakerBaseEjection
	}
	if !set.has("breaker.max_ejection") {
		// A base_ejection above the default maximum raises the maximum
		// with it: ejections then stay base_ejection long.
		b.MaxEjection = max(DefaultBreakerMaxEjection, b.BaseEjection)
	}
	if !set.has("breaker.max_ejection_percent") {
		b.MaxEjectionPercent = DefaultBreakerMaxEjectionPercent
	}
	if !set.has("breaker.half_open_probes") {
		b.HalfOpenProbes = DefaultBreakerHalfOpenProbes
	}
}

// defaultRetry fills the attributes of r not set under prefix from def.
func defaultRetry(r *Retry, set attrSet, prefix string, def Retry) {
	if !set.has(prefix + "max_attempts") {
		r.MaxAttempts = def.MaxAttempts
	}
	if !set.has(prefix + "backoff") {
		r.BackoffMin, r.BackoffMax = def.BackoffMin, def.BackoffMax
	}
	if !set.has(prefix + "budget") {
		r.Budget = def.Budget
	}
	if !set.has(prefix + "codes") {
		r.Codes = append([]spi.Code(nil), def.Codes...)
	}
}
