package stack

import (
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/core/grpcsvc"
)

// addGRPC turns gRPC on for a server whose block has a grpc block: the
// server answers gRPC on its listen address, with grpc.health.v1 backed
// by its health service and grpc.reflection.v1 unless turned off.
func (st *Stack) addGRPC(cfg *config.ServerConfig, srv *core.Server) error {
	g := cfg.GRPC
	if g == nil {
		return nil
	}
	if err := srv.EnableGRPC(core.GRPCOptions{MaxMessage: int(g.MaxMessage)}); err != nil {
		return err
	}
	if g.Health {
		if h := st.Health(srv); h != nil {
			if err := grpcsvc.RegisterHealth(srv, h); err != nil {
				return err
			}
		}
	}
	if g.Reflection {
		return grpcsvc.RegisterReflection(srv)
	}
	return nil
}

// listenGRPC opens a server block's grpc.listen address, if any: a second
// listener of the same server (it tells gRPC and Kite apart like the
// first).
func (st *Stack) listenGRPC(ctx context.Context, name string, cfg *config.ServerConfig, srv *core.Server) error {
	if cfg.GRPC == nil || cfg.GRPC.Listen == "" {
		return nil
	}
	ln, err := srv.Listen(ctx, cfg.GRPC.Listen, nil)
	if err != nil {
		return fmt.Errorf("%s: server %q: grpc listen: %w", pos(grpcRange(cfg)), name, err)
	}
	st.log.Named(name).Info("serving gRPC", "listen", ln.Addr().String())
	return nil
}

// grpcTransport is the transport of a client block with a grpc block (or
// transport = "grpc"); its tls block, if any, makes it gRPC over TLS with
// the same settings the tls transport would take from it (tls.go). at
// locates the tls block for errors about its files.
func grpcTransport(g *config.ClientGRPC, ctls *config.ClientTLS, at hcl.Range) (*core.GRPCTransport, error) {
	t := &core.GRPCTransport{}
	if g != nil {
		t.Package, t.Packages, t.MaxMessage = g.Package, g.Packages, int(g.MaxMessage)
	}
	if ctls != nil {
		tr, err := core.NewTLS(tlsConfig(nil, ctls))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pos(at), err)
		}
		t.TLS = tr
	}
	return t, nil
}

func grpcRange(cfg *config.ServerConfig) hcl.Range {
	if r, ok := cfg.Ranges["grpc.listen"]; ok {
		return r
	}
	return cfg.DeclRange
}
