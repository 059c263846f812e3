package kite

import (
	"context"
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/spi"

	// The default plugin set: the default codec and balancer of
	// core/defaults, and the recover and log filters.
	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/filter-log"
	_ "github.com/kiterpc/kite/plugins/filter-recover"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
)

// Runtime types.
type (
	Server        = core.Server
	ServerOptions = core.ServerOptions
	Client        = core.Client
	ClientOptions = core.ClientOptions
	Future        = core.Future
	Stream        = core.Stream
	ServiceDesc   = core.ServiceDesc
	MethodDesc    = core.MethodDesc
	StreamDesc    = core.StreamDesc
	MethodOptions = core.MethodOptions
	ClientStats   = core.ClientStats
)

// Contract types, every type a ClientOptions or ServerOptions field
// holds included, so that an application names them through kite alone.
type (
	Error      = spi.Error
	Code       = spi.Code
	Metadata   = spi.Metadata
	Instance   = spi.Instance
	Call       = spi.Call
	Filter     = spi.Filter
	Invoker    = spi.Invoker
	Registry   = spi.Registry
	Balancer   = spi.Balancer
	Transport  = spi.Transport
	Codec      = spi.Codec
	Compressor = spi.Compressor
	Catalog    = spi.Catalog
)

// Resilience settings: ClientOptions.Retry, MethodOptions.Retry,
// ClientOptions.Breaker and ClientStats.Breakers.
type (
	RetryPolicy   = resilience.Policy
	BreakerConfig = resilience.BreakerConfig
	BreakerStats  = resilience.BreakerStats
)

// Logger is the logger ServerOptions.Logger and ClientOptions.Logger take.
type Logger = hclog.Logger

// NewLogger returns a text logger named name writing to w (os.Stderr when
// nil) at level: "trace", "debug", "info", "warn", "error" or "off" (an
// unknown level means info).
func NewLogger(name, level string, w io.Writer) Logger {
	l := hclog.LevelFromString(level)
	if l == hclog.NoLevel {
		l = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: l, Output: w})
}

// NullLogger returns a logger that discards everything.
func NullLogger() Logger { return hclog.NewNullLogger() }

// Status codes.
const (
	OK                 = spi.OK
	Canceled           = spi.Canceled
	Unknown            = spi.Unknown
	InvalidArgument    = spi.InvalidArgument
	DeadlineExceeded   = spi.DeadlineExceeded
	NotFound           = spi.NotFound
	AlreadyExists      = spi.AlreadyExists
	PermissionDenied   = spi.PermissionDenied
	ResourceExhausted  = spi.ResourceExhausted
	FailedPrecondition = spi.FailedPrecondition
	Aborted            = spi.Aborted
	OutOfRange         = spi.OutOfRange
	Unimplemented      = spi.Unimplemented
	Internal           = spi.Internal
	Unavailable        = spi.Unavailable
	DataLoss           = spi.DataLoss
	Unauthenticated    = spi.Unauthenticated
)

// Sentinel errors for errors.Is, one per code (OK has none).
var (
	ErrCanceled           = spi.ErrCanceled
	ErrUnknown            = spi.ErrUnknown
	ErrInvalidArgument    = spi.ErrInvalidArgument
	ErrDeadlineExceeded   = spi.ErrDeadlineExceeded
	ErrNotFound           = spi.ErrNotFound
	ErrAlreadyExists      = spi.ErrAlreadyExists
	ErrPermissionDenied   = spi.ErrPermissionDenied
	ErrResourceExhausted  = spi.ErrResourceExhausted
	ErrFailedPrecondition = spi.ErrFailedPrecondition
	ErrAborted            = spi.ErrAborted
	ErrOutOfRange         = spi.ErrOutOfRange
	ErrUnimplemented      = spi.ErrUnimplemented
	ErrInternal           = spi.ErrInternal
	ErrUnavailable        = spi.ErrUnavailable
	ErrDataLoss           = spi.ErrDataLoss
	ErrUnauthenticated    = spi.ErrUnauthenticated
)

// NewServer returns a server; see core.ServerOptions for the knobs.
func NewServer(opts ServerOptions) (*Server, error) { return core.NewServer(opts) }

// NewClient returns a client; see core.ClientOptions for the knobs.
func NewClient(opts ClientOptions) (*Client, error) { return core.NewClient(opts) }

// Errorf returns an *Error with code and a formatted message; return it
// from a handler and the caller receives the same code and message.
func Errorf(code Code, format string, args ...any) *Error { return spi.Errorf(code, format, args...) }

// CodeOf returns the status code of err (OK for nil).
func CodeOf(err error) Code { return spi.CodeOf(err) }

// WithMetadata attaches request metadata to calls made with ctx.
func WithMetadata(ctx context.Context, md *Metadata) context.Context {
	return core.WithMetadata(ctx, md)
}

// CallFromContext returns the call a handler serves (method, peer,
// metadata), or nil outside a handler.
func CallFromContext(ctx context.Context) *Call { return core.CallFromContext(ctx) }
