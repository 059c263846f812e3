package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime/debug"

	"github.com/kiterpc/kite/spi"
)

// buildChain composes the server's filters around final, with the
// request body decoded (decodeStep) after the filters at the head of the
// chain that read metadata only (spi.MetadataFilter): authentication
// refuses a call before its body is decompressed. Every filter keeps its
// place, and a filter that may read Request sees it decoded.
func (s *Server) buildChain(final spi.Invoker) spi.Invoker {
	fs := s.opts.Filters
	k := 0
	for k < len(fs) {
		if _, ok := fs[k].(spi.MetadataFilter); !ok {
			break
		}
		k++
	}
	return spi.Chain(s.decodeStep(spi.Chain(final, fs[k:]...)), fs[:k]...)
}

// decodeStep decodes the request of a unary call whose body is still
// pending (charging the body budget for decompression), then calls next.
// Calls decoded elsewhere (gRPC) pass through.
func (s *Server) decodeStep(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		hc, ok := ctx.(*handlerCtx)
		if !ok {
			hc, _ = ctx.Value(pendingKey{}).(*handlerCtx)
		}
		if hc == nil || hc.sc == nil || !hc.sc.pending {
			return next(ctx, call)
		}
		sc := hc.sc
		sc.pending = false
		req := sc.m.newReq()
		n, err := decodeBodyIn(s.table, &sc.f, req, s.opts.MaxFrame, hc.conn)
		sc.charged += n
		sc.f.Release()
		if err != nil {
			return err
		}
		call.Request = req
		return next(ctx, call)
	}
}

// panicked logs a recovered panic — value and stack, with an incident id
// — and returns the error the caller gets: Internal with the id only, as
// a panic value may hold anything (a token, a query, a path).
func (s *Server) panicked(method, peer string, r any) error {
	id := incidentID()
	s.log.Error("panic in handler", "method", method, "peer", peer, "incident", id,
		"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	return spi.Errorf(spi.Internal, "internal error in %s (incident %s; details in the server's log)", method, id)
}

// incidentID is a random id that ties an error a caller saw to the
// server's log line.
func incidentID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
