// Package recoverfilter is the "recover" filter: a panic anywhere below it
// in the chain (later filters or the handler) becomes an Internal error for
// that call, logged with its stack, and the process keeps serving.
//
// On a server the caller gets a generic "internal error (incident <id>)":
// a panic value may hold anything (a token, a query, a file path), so it
// stays in the log line, which carries the same incident id. On a client
// the error stays in the process and carries the value.
//
// The core server also has a last-resort recover; this filter adds the
// stack trace and lets the position in the chain be chosen in kite.hcl.
package recoverfilter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime/debug"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/spi"
)

// Filter recovers panics into Internal errors.
type Filter struct {
	// Logger receives the panic and stack; default hclog.Default().
	Logger hclog.Logger
	// Stack includes the goroutine stack in the log line (default true).
	Stack bool
}

type config struct {
	Stack *bool `json:"stack"`
}

// New builds the filter from its kite.hcl block.
func New(cfg spi.Config) (any, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	f := &Filter{Stack: true}
	if c.Stack != nil {
		f.Stack = *c.Stack
	}
	return f, nil
}

// MetadataOnly implements spi.MetadataFilter: it never reads the request, so it does not hold back
// the server from authenticating before decoding.
func (*Filter) MetadataOnly() {}

// Wrap implements spi.Filter.
func (f *Filter) Wrap(next spi.Invoker) spi.Invoker {
	log := f.Logger
	if log == nil {
		log = hclog.Default().Named("recover")
	}
	return func(ctx context.Context, call *spi.Call) (err error) {
		defer func() {
			if r := recover(); r != nil {
				id := incidentID()
				args := []any{"method", call.Method, "side", call.Side.String(), "peer", call.Peer, "incident", id, "panic", fmt.Sprint(r)}
				if f.Stack {
					args = append(args, "stack", string(debug.Stack()))
				}
				log.Error("recovered from panic", args...)
				if call.Side == spi.ServerSide {
					err = spi.Errorf(spi.Internal, "internal error in %s (incident %s; details in the server's log)", call.Method, id)
				} else {
					err = spi.Errorf(spi.Internal, "panic in %s (incident %s): %v", call.Method, id, r)
				}
			}
		}()
		return next(ctx, call)
	}
}

// incidentID ties the error a caller saw to the log line.
func incidentID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func init() {
	spi.Register(spi.Entry{
		Kind: spi.KindFilter, Name: "recover", Version: "1.0.0",
		Doc:    "turns panics into Internal errors and logs the stack",
		Schema: spi.Schema{{Name: "stack", Type: spi.TypeBool, Doc: "log the goroutine stack (default true)"}},
		New:    New,
	})
}
