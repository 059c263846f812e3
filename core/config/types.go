package config

import (
	"crypto/tls"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiterpc/kite/spi"
)

// File is a decoded, checked kite.hcl. Every block keeps its DeclRange so
// later failures (a plugin refusing its config, a port already in use) can
// still point into the file.
type File struct {
	// Filename is the name the file was loaded under (as given to Load).
	Filename string
	// Dir is the directory relative paths in the file were resolved against.
	Dir string

	Plugins     []*PluginDecl
	Registries  []*Component
	Balancers   []*Component
	Filters     []*Component
	Codecs      []*Component
	Compressors []*Component
	Servers     []*ServerConfig
	Clients     []*ClientConfig

	// Admin is the admin listener block; nil when the file has none (the
	// listener is opt-in).
	Admin *Admin
	// Probes is the Kubernetes probe listener block; nil when the file
	// has none (opt-in too).
	Probes *Probes
	// Log is the log block; nil when the file has none (the program's
	// logger is used as it is).
	Log *Log

	// Files holds the parsed source, for FormatDiagnostics.
	Files map[string]*hcl.File

	// Warnings are diagnostics that did not stop the file from loading,
	// such as a plugin block shadowing a compiled-in implementation.
	Warnings hcl.Diagnostics
}

// PluginDecl is a `plugin "<kind>" "<name>"` block: an implementation
// served by an out-of-process plugin binary.
type PluginDecl struct {
	Kind spi.Kind
	Name string
	// Path is the plugin binary, resolved against the config file's
	// directory when relative. For a block with command it is command[0]
	// (an interpreter), kept bare (looked up on PATH at start) when it
	// has no slash, and Args are the rest of command.
	Path string
	// SHA256 is the expected lower-case hex checksum of the binary; the
	// host refuses to start a binary that does not match.
	SHA256 string
	Args   []string
	Env    map[string]string
	// Files maps further files the plugin runs (a script and the modules
	// it imports, for a plugin declared with command = [interpreter, …])
	// to their lower-case hex sha256, each path absolute (resolved
	// against the config file's directory). The host checks them before
	// every start, like the executable.
	Files map[string]string
	// StartTimeout bounds the plugin's start and handshake (and each
	// restart's); 0 means the host's default (10 s, stack's
	// WithPluginStartTimeout).
	StartTimeout time.Duration

	DeclRange hcl.Range
	// Ranges maps the block's attributes ("path", "sha256", "command",
	// "files", …) to their positions, so a load error points at the
	// attribute at fault.
	Ranges map[string]hcl.Range
}

// Component is a registry, balancer, filter, codec or compressor block:
// `registry "<impl>" "<label>" { … }`. Blocks are referenced by label;
// an implementation name used where no block has that label stands for
// the implementation with an empty configuration (see File.Component).
type Component struct {
	Kind  spi.Kind
	Impl  string
	Label string
	// Config is the block body as a JSON object. For catalog
	// implementations it has been checked against the entry's Schema.
	Config spi.Config
	// Plugin is set when the implementation is served by a plugin block.
	// Its schema is not known until the plugin starts, so Config was not
	// checked: the host validates it and reports through AttrRanges.
	Plugin *PluginDecl
	// Implicit marks a component synthesised for a bare implementation
	// name (no block in the file).
	Implicit bool

	DeclRange hcl.Range
	// AttrRanges maps each attribute in the body to its range, so errors
	// found later (by the plugin itself) can still name a position.
	AttrRanges map[string]hcl.Range
}

// NoRegistry is the registry reference that turns registration off for a
// server (it is then reachable only through clients' target lists).
const NoRegistry = "none"

// ServerConfig is a `server "<name>"` block.
type ServerConfig struct {
	Name string
	// Listen is the address to accept on: "host:port", or a socket path
	// for the unix transport.
	Listen string
	// Advertise is the address registered for clients to dial; "" means
	// the address the listener actually bound (useful with port 0).
	Advertise string
	// Transport is the catalog transport name ("tcp", "unix", "tls").
	Transport string
	// Registry is a registry block label or implementation name, or
	// NoRegistry.
	Registry string
	// Codec is the codec used for frames that name none. Requests are
	// answered in the codec they arrived in.
	Codec string
	// Filters are filter labels or implementation names, outermost first.
	Filters []string

	// ServiceName is the name the server registers under.
	ServiceName string
	Weight      int
	Version     string
	Zone        string
	Tags        []string
	Metadata    map[string]string

	// ShutdownTimeout bounds the graceful drain after GOAWAY.
	ShutdownTimeout time.Duration

	Limits      Limits
	Compression *Compression
	TLS         *ServerTLS
	GRPC        *ServerGRPC // grpc block (grpc.go); nil = gRPC off

	DeclRange hcl.Range
	// Ranges maps attribute paths ("listen", "limits.max_frame") to their
	// ranges for errors found at run time.
	Ranges map[string]hcl.Range
}

// Limits bounds what one server accepts. Zero means unlimited where the
// table in docs/CONFIG.md says so.
type Limits struct {
	// MaxConcurrency caps in-flight requests across all connections; 0 = unlimited.
	MaxConcurrency int
	// MaxConnConcurrency caps in-flight requests on one connection; 0 = unlimited.
	MaxConnConcurrency int
	// HandshakeTimeout closes a connection whose first frame has not
	// arrived in time (a silent client holds no socket for long).
	HandshakeTimeout time.Duration
	// MaxFrame caps one frame's size in bytes, checked before allocating.
	MaxFrame int64
	// MaxMetadata caps a frame's metadata section in bytes.
	MaxMetadata int64
	// MaxConns caps open connections; 0 = unlimited.
	MaxConns int
	// IdleTimeout closes connections without traffic (heartbeats count); 0 = never.
	IdleTimeout time.Duration
	// StreamIdleTimeout ends a stream on which no message moved for this
	// long; 0 = never.
	StreamIdleTimeout time.Duration
	// BodyMemory is the server-wide budget in bytes for request bodies in
	// progress (wire and decompressed size) and unread stream data.
	BodyMemory int64
	// MaxPeerShare is the share (0-1] of max_concurrency and body_memory
	// one remote address may hold.
	MaxPeerShare float64
	// WriteTimeout bounds each socket write and how long a connection's
	// unsent bytes may stay above the cap; 0 = never.
	WriteTimeout time.Duration
}

// Compression selects a compressor for bodies at or above Threshold bytes.
type Compression struct {
	// Name is a compressor block label or implementation name.
	Name      string
	Threshold int64
}

// ServerTLS configures the server side of the tls transport.
type ServerTLS struct {
	Cert, Key string
	// CA verifies client certificates (mTLS) when set.
	CA         string
	ClientAuth tls.ClientAuthType
	// MinVersion is "1.2" or "1.3"; "" takes the transport's default (1.3).
	MinVersion string
}

// ClientTLS configures the client side of the tls transport.
type ClientTLS struct {
	// CA verifies the server; "" uses the system roots.
	CA string
	// Cert and Key present a client certificate (mTLS).
	Cert, Key          string
	ServerName         string
	InsecureSkipVerify bool
	// MinVersion is "1.2" or "1.3"; "" takes the transport's default (1.3).
	MinVersion string
}

// ClientConfig is a `client "<name>"` block.
type ClientConfig struct {
	Name string
	// Service is the logical service to call.
	Service string
	// Target lists fixed addresses; when set, no registry is consulted.
	Target []string
	// Registry is a registry block label or implementation name; "" when
	// Target is set.
	Registry string
	// Balancer is a balancer block label or implementation name.
	Balancer  string
	Codec     string
	Transport string
	// Timeout is the per-call deadline applied when the caller's context
	// has none (or a later one); 0 leaves calls to the context.
	Timeout        time.Duration
	ConnectTimeout time.Duration
	Filters        []string

	Retry       Retry
	Pool        Pool
	Heartbeat   Heartbeat
	Breaker     Breaker
	Compression *Compression
	TLS         *ClientTLS
	GRPC        *ClientGRPC // grpc block (grpc.go); nil = Kite's protocol
	// Methods holds per-method overrides in file order; use Method to get
	// a method's effective settings.
	Methods []*MethodConfig

	DeclRange hcl.Range
	Ranges    map[string]hcl.Range
}

// Retry is a client's (or one method's) retry policy. Retries happen only
// where safe: the request never left, or the method is idempotent.
type Retry struct {
	// MaxAttempts counts the first try; 1 turns retries off.
	MaxAttempts int
	// BackoffMin and BackoffMax bound the exponential backoff (with full
	// jitter) between attempts.
	BackoffMin, BackoffMax time.Duration
	// Budget is the fraction of calls that may be retries, so a failing
	// backend is not hit with MaxAttempts times its load; 0 turns retries off.
	Budget float64
	// Codes are the status codes worth retrying.
	Codes []spi.Code
}

// Pool configures the per-endpoint connection pool.
type Pool struct {
	ConnsPerEndpoint int
	// IdleTimeout closes a pooled connection unused this long; 0 = never.
	IdleTimeout time.Duration
}

// Heartbeat configures ping/pong dead-peer detection.
type Heartbeat struct {
	// Interval between pings on an otherwise idle connection; 0 = off.
	Interval time.Duration
	// Timeout is how long to wait for the pong before closing the connection.
	Timeout time.Duration
}

// Breaker configures the client's per-endpoint circuit breakers (outlier
// ejection): an endpoint that keeps failing is taken out of the balancer's
// rotation for a while, then let back in by a few probe calls.
type Breaker struct {
	// Enabled false never ejects an endpoint.
	Enabled bool
	// ConsecutiveFailures ejects an endpoint after this many failed calls
	// in a row; 0 turns this trigger off.
	ConsecutiveFailures int
	// FailureRatio ejects an endpoint when failed / all calls over Window
	// reaches it, once MinRequests calls were seen; 0 turns this trigger off.
	FailureRatio float64
	Window       time.Duration
	MinRequests  int
	// BaseEjection is the first ejection's length; each ejection that
	// follows without MaxEjection of health in between doubles it, up to
	// MaxEjection.
	BaseEjection, MaxEjection time.Duration
	// MaxEjectionPercent caps the share of the client's endpoints ejected
	// at once (at least one may always be), so a bad minute cannot pile
	// every call onto the last few instances.
	MaxEjectionPercent int
	// HalfOpenProbes is how many probe calls may test an endpoint at once
	// when its ejection ends.
	HalfOpenProbes int
}

// MethodConfig is a `method "Svc.Method"` block inside a client.
type MethodConfig struct {
	Name       string
	Timeout    time.Duration
	Idempotent bool
	Retry      Retry

	DeclRange hcl.Range
}

// Method returns the effective settings for method ("Svc.Method"): its
// method block when there is one, otherwise the client's own.
func (c *ClientConfig) Method(method string) MethodConfig {
	for _, m := range c.Methods {
		if m.Name == method {
			return *m
		}
	}
	return MethodConfig{Name: method, Timeout: c.Timeout, Retry: c.Retry}
}

// Server returns the server block named name.
func (f *File) Server(name string) (*ServerConfig, bool) {
	for _, s := range f.Servers {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// Client returns the client block named name.
func (f *File) Client(name string) (*ClientConfig, bool) {
	for _, c := range f.Clients {
		if c.Name == name {
			return c, true
		}
	}
	return nil, false
}

// Components returns the declared blocks of kind.
func (f *File) Components(kind spi.Kind) []*Component {
	switch kind {
	case spi.KindRegistry:
		return f.Registries
	case spi.KindBalancer:
		return f.Balancers
	case spi.KindFilter:
		return f.Filters
	case spi.KindCodec:
		return f.Codecs
	case spi.KindCompressor:
		return f.Compressors
	}
	return nil
}

// Component resolves a reference as written in a server or client block
// (registry = "main", balancer = "weighted", a filters entry, …): a block
// label of that kind first, then an implementation name, which stands for
// that implementation with an empty configuration. References were
// checked by Parse, so for a loaded File the lookup fails only for
// NoRegistry or "".
func (f *File) Component(kind spi.Kind, ref string) (*Component, bool) {
	for _, c := range f.Components(kind) {
		if c.Label == ref {
			return c, true
		}
	}
	if ref == "" || (kind == spi.KindRegistry && ref == NoRegistry) {
		return nil, false
	}
	c := &Component{Kind: kind, Impl: ref, Label: ref, Config: spi.Config("{}"), Implicit: true}
	if p := f.plugin(kind, ref); p != nil {
		c.Plugin = p
		c.DeclRange = p.DeclRange
	}
	return c, true
}

func (f *File) plugin(kind spi.Kind, name string) *PluginDecl {
	for _, p := range f.Plugins {
		if p.Kind == kind && p.Name == name {
			return p
		}
	}
	return nil
}
