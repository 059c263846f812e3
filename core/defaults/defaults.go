package defaults

import (
	"fmt"
	"strconv"
	"time"

	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/spi"
)

// Server defaults: kite.hcl's server block (and its limits block) and
// core.ServerOptions.
const (
	// Transport: plain TCP. TLS is opted into with a tls block.
	Transport = "tcp"
	// Registry: the embedded, single-machine registry, so a kite.hcl with
	// no registry block works on a laptop; production names zk or etcd.
	Registry = "local"
	// Codec: "auto" (plugins/codec-json): a call whose request and
	// response are protobuf messages travels as protobuf, any other as
	// JSON, and the codec id in each frame lets a server answer JSON-only
	// peers (`kite call`, other languages) in JSON. Generated proto stubs
	// get protobuf's speed without configuration (docs/CODECS.md).
	Codec = "auto"
	// Weight: spi.DefaultWeight, so weights written as percentages (50,
	// 200) read naturally next to instances that declare none.
	Weight = spi.DefaultWeight
	// ShutdownTimeout: 10 s drains ordinary calls, and stays under the
	// 30 s Kubernetes (and systemd 90 s) grace period before SIGKILL.
	ShutdownTimeout = 10 * time.Second
	// MaxConcurrency: 10,000 calls in progress across the server. Beyond
	// that a server is queueing, not serving; ResourceExhausted lets the
	// client retry elsewhere (it was never run).
	MaxConcurrency = 10000
	// MaxConnConcurrency: 1,000 per connection, so one client cannot take
	// the whole server's allowance.
	MaxConnConcurrency = 1000
	// MaxConns: 0 = unlimited; the process's file limit is the bound.
	MaxConns = 0
	// MaxFrame and MaxMetadata are the protocol's own limits (the one
	// definition is core/protocol's): 4 MiB and 64 KiB, checked before
	// anything is allocated.
	MaxFrame    = protocol.DefaultMaxFrame
	MaxMetadata = protocol.DefaultMaxMetadata
	// ServerIdleTimeout: a connection with no traffic at all (heartbeats
	// count) for 5 minutes is closed. A live client pings every
	// HeartbeatInterval, so only dead or abandoned peers are cut.
	ServerIdleTimeout = 5 * time.Minute
	// HandshakeTimeout: a connection that sends no first frame in 10 s is
	// closed, so silent sockets cannot hold file descriptors.
	HandshakeTimeout = 10 * time.Second
	// CompressThreshold: bodies under 1 KiB are sent raw even when a
	// compressor is configured; below that compression costs more CPU than
	// the bytes it saves on a LAN.
	CompressThreshold = 1 << 10
	// StreamWindow: 64 messages buffered per stream receiver.
	StreamWindow = 64
	// StreamIdleTimeout: a stream on which no message moved either way
	// for 60 s is ended (DeadlineExceeded), so idle streams cannot hold
	// slots for good; long enough for a handler that thinks between
	// messages, short next to the 5 minute connection idle timeout.
	StreamIdleTimeout = 60 * time.Second
	// BodyMemory: 256 MiB server-wide for request bodies in progress
	// (wire plus decompressed size, charged before decompressing) and
	// unread stream data: 64 concurrent 4 MiB bodies, or 250,000 of 1 KiB.
	BodyMemory = 256 << 20
	// MaxPeerShare: one remote address may hold half of max_concurrency
	// and of body_memory (always at least 100 calls), so one client, with
	// however many connections, cannot take the whole server.
	MaxPeerShare = 0.5
	// WriteTimeout: every socket write must complete within 10 s, and a
	// connection whose unsent bytes stay above the 4 MiB cap that long is
	// closed: a peer that stops reading cannot pin answers and handlers
	// for as long as it stays connected. 4 MiB in 10 s is 400 KiB/s, far
	// below any link a service talks over.
	WriteTimeout = 10 * time.Second
)

// Client defaults: kite.hcl's client block and core.ClientOptions.
const (
	// Balancer: smooth weighted round-robin ("weighted", plugins/lb-weighted),
	// because servers register a weight and a production user who sets
	// weight = 200 expects twice the traffic. With equal weights it is
	// plain round-robin. A program that links no "weighted" balancer
	// (core without the plugin set) gets core's own smooth weighted
	// round-robin: the same order, without slow start.
	Balancer = "weighted"
	// Timeout: none. The caller's context carries the deadline, as Go
	// code expects; a framework cap would cut callers who deliberately
	// gave a slow method longer, and the failure would not be retried.
	// Dead peers cannot hang a call: the connect timeout and heartbeats
	// (HeartbeatInterval + HeartbeatTimeout) fail it over.
	Timeout time.Duration = 0
	// ConnectTimeout: 2 s. Linux retransmits a lost SYN after 1 s and then
	// after 3 s: 2 s allows the first retransmission and its answer, where
	// 3 s would end just as the second one is sent.
	ConnectTimeout = 2 * time.Second
	// ConnsPerEndpoint: 1. A connection is multiplexed: the headline
	// benchmark runs 100 concurrent callers over one. More connections
	// multiply sockets and server memory for every client-server pair,
	// and a broken connection is already replaced in the background.
	ConnsPerEndpoint = 1
	// PoolIdleTimeout: a pooled connection no call used for 5 minutes is
	// closed (heartbeats do not count). Shorter would make low-rate
	// clients redial (and re-handshake TLS) between calls; it matches the
	// server's ServerIdleTimeout.
	PoolIdleTimeout = 5 * time.Minute
	// HeartbeatInterval and HeartbeatTimeout: a silent connection is
	// pinged every 10 s and closed if the pong takes 3 s, so a dead peer
	// (power loss, a partition: no RST ever arrives) is found in 13 s.
	HeartbeatInterval = 10 * time.Second
	HeartbeatTimeout  = 3 * time.Second
	// ReconnectBackoffMin and Max bound the jittered delay before
	// redialing an endpoint that failed.
	ReconnectBackoffMin = 50 * time.Millisecond
	ReconnectBackoffMax = 5 * time.Second
)

// Operations listener defaults: kite.hcl's top-level admin and probes
// blocks (both opt-in: without the block nothing listens).
const (
	// AdminListen: loopback. The admin listener shows the status page
	// (plugin paths, registry contents), /metrics and, when asked,
	// /debug/pprof: nothing a pod IP or a LAN should reach by accident.
	AdminListen = "127.0.0.1:9100"
	// AdminPprof: off. A CPU profile stalls nothing but costs CPU, a heap
	// profile reveals data, and few processes are profiled on any given
	// day: pprof = true turns it on where it is wanted.
	AdminPprof = false
	// ProbesListen: every interface, IPv4 and IPv6, because a kubelet
	// probes the pod IP, never 127.0.0.1. It is safe to expose: the
	// listener serves /healthz and /readyz and nothing else.
	ProbesListen = ":9101"
)

// Retry defaults: the client's retry block and core.ClientOptions.Retry
// (the resilience package's defaults, which a nil Policy takes).
const (
	RetryMaxAttempts = resilience.DefaultMaxAttempts
	RetryBackoff     = resilience.DefaultBackoff
	RetryBudget      = resilience.DefaultBudgetRatio
)

// RetryCodes is nil: every code the retry rule (resilience.ShouldRetry)
// allows, which is Unavailable, DeadlineExceeded and ResourceExhausted,
// each only where retrying is safe (not sent, or an idempotent method).
// Unavailable alone would not retry a connect timeout to one dead
// instance, which is exactly what another instance fixes.
var RetryCodes []spi.Code

// Breaker defaults: the client's breaker block and
// core.ClientOptions.Breaker (the resilience package's defaults).
const (
	BreakerEnabled             = true
	BreakerConsecutiveFailures = resilience.DefaultConsecutiveFailures
	BreakerFailureRatio        = resilience.DefaultFailureRatio
	BreakerWindow              = resilience.DefaultWindow
	BreakerMinRequests         = resilience.DefaultMinRequests
	BreakerBaseEjection        = resilience.DefaultBaseEjection
	BreakerMaxEjection         = resilience.DefaultMaxEjection
	BreakerMaxEjectionPercent  = resilience.DefaultMaxEjectionPercent
	BreakerHalfOpenProbes      = resilience.DefaultHalfOpenProbes
)

// Setting is one row of the table: where kite.hcl writes the setting and
// its default value.
type Setting struct {
	// Block is the kite.hcl block path: "server", "server.limits",
	// "client", "client.retry", …
	Block string
	// Attr is the attribute name within Block.
	Attr string
	// Value is the default (a time.Duration, int, float64, bool, string
	// or []spi.Code).
	Value any
	// Size marks an int written in kite.hcl as a size ("4MiB").
	Size bool
}

// Doc returns the default as docs/CONFIG.md writes it in its table.
func (s Setting) Doc() string {
	switch v := s.Value.(type) {
	case time.Duration:
		return `"` + Duration(v) + `"`
	case int:
		if s.Size {
			return `"` + Size(int64(v)) + `"`
		}
		return strconv.Itoa(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case string:
		return strconv.Quote(v)
	case []spi.Code:
		if len(v) == 0 {
			return "every code the retry rule allows"
		}
		out := "["
		for i, c := range v {
			if i > 0 {
				out += ", "
			}
			out += strconv.Quote(c.String())
		}
		return out + "]"
	}
	return fmt.Sprint(s.Value)
}

// Table lists every default that kite.hcl and the Go API share, for the
// tests that hold docs/CONFIG.md and both configuration paths to it.
// A new option gets a constant above and a row here.
var Table = []Setting{
	{Block: "server", Attr: "transport", Value: Transport},
	{Block: "server", Attr: "registry", Value: Registry},
	{Block: "server", Attr: "codec", Value: Codec},
	{Block: "server", Attr: "weight", Value: Weight},
	{Block: "server", Attr: "shutdown_timeout", Value: ShutdownTimeout},
	{Block: "server.limits", Attr: "max_concurrency", Value: MaxConcurrency},
	{Block: "server.limits", Attr: "max_conn_concurrency", Value: MaxConnConcurrency},
	{Block: "server.limits", Attr: "max_frame", Value: MaxFrame, Size: true},
	{Block: "server.limits", Attr: "max_metadata", Value: MaxMetadata, Size: true},
	{Block: "server.limits", Attr: "max_conns", Value: MaxConns},
	{Block: "server.limits", Attr: "idle_timeout", Value: ServerIdleTimeout},
	{Block: "server.limits", Attr: "handshake_timeout", Value: HandshakeTimeout},
	{Block: "server.limits", Attr: "stream_idle_timeout", Value: StreamIdleTimeout},
	{Block: "server.limits", Attr: "body_memory", Value: BodyMemory, Size: true},
	{Block: "server.limits", Attr: "max_peer_share", Value: MaxPeerShare},
	{Block: "server.limits", Attr: "write_timeout", Value: WriteTimeout},
	{Block: "compression", Attr: "threshold", Value: CompressThreshold, Size: true},

	{Block: "admin", Attr: "listen", Value: AdminListen},
	{Block: "admin", Attr: "pprof", Value: AdminPprof},
	{Block: "probes", Attr: "listen", Value: ProbesListen},

	{Block: "client", Attr: "registry", Value: Registry},
	{Block: "client", Attr: "balancer", Value: Balancer},
	{Block: "client", Attr: "codec", Value: Codec},
	{Block: "client", Attr: "transport", Value: Transport},
	{Block: "client", Attr: "timeout", Value: Timeout},
	{Block: "client", Attr: "connect_timeout", Value: ConnectTimeout},
	{Block: "client.retry", Attr: "max_attempts", Value: RetryMaxAttempts},
	{Block: "client.retry", Attr: "backoff", Value: RetryBackoff},
	{Block: "client.retry", Attr: "budget", Value: RetryBudget},
	{Block: "client.retry", Attr: "codes", Value: RetryCodes},
	{Block: "client.pool", Attr: "conns_per_endpoint", Value: ConnsPerEndpoint},
	{Block: "client.pool", Attr: "idle_timeout", Value: PoolIdleTimeout},
	{Block: "client.heartbeat", Attr: "interval", Value: HeartbeatInterval},
	{Block: "client.heartbeat", Attr: "timeout", Value: HeartbeatTimeout},
	{Block: "client.breaker", Attr: "enabled", Value: BreakerEnabled},
	{Block: "client.breaker", Attr: "consecutive_failures", Value: BreakerConsecutiveFailures},
	{Block: "client.breaker", Attr: "failure_ratio", Value: BreakerFailureRatio},
	{Block: "client.breaker", Attr: "window", Value: BreakerWindow},
	{Block: "client.breaker", Attr: "min_requests", Value: BreakerMinRequests},
	{Block: "client.breaker", Attr: "base_ejection", Value: BreakerBaseEjection},
	{Block: "client.breaker", Attr: "max_ejection", Value: BreakerMaxEjection},
	{Block: "client.breaker", Attr: "max_ejection_percent", Value: BreakerMaxEjectionPercent},
	{Block: "client.breaker", Attr: "half_open_probes", Value: BreakerHalfOpenProbes},
}

// Duration formats d the way docs/CONFIG.md writes durations: "5m",
// "10s", "50ms" ("0s" for zero).
func Duration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d%time.Millisecond == 0:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	}
	return d.String()
}

// Size formats n the way docs/CONFIG.md writes sizes: "4MiB", "64KiB".
func Size(n int64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n != 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n != 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}
