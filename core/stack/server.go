package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/spi"
)

// builtServer is a core.Server with what Serve needs from its block.
type builtServer struct {
	srv       *core.Server
	cfg       *config.ServerConfig
	transport spi.Transport
	registry  spi.Registry // nil when registry = "none"
}

// Server builds the core.Server of the `server "<name>"` block: limits,
// codec, compression and filters. The caller registers services on it and
// serves it (or lets Serve do all of that). Close closes it.
func (st *Stack) Server(name string) (*core.Server, error) {
	b, err := st.buildServer(name)
	if err != nil {
		return nil, err
	}
	return b.srv, nil
}

func (st *Stack) buildServer(name string) (*builtServer, error) {
	f := st.File()
	cfg, ok := f.Server(name)
	if !ok {
		return nil, fmt.Errorf("%s: no server block named %q (servers: %v)", f.Filename, name, serverNames(f))
	}
	at := func(attr string) hcl.Range {
		if r, ok := cfg.Ranges[attr]; ok {
			return r
		}
		return cfg.DeclRange
	}
	codec, err := st.codec(f, cfg.Codec, at("codec"))
	if err != nil {
		return nil, err
	}
	opts := core.ServerOptions{
		Catalog:            st.cat,
		Codecs:             []spi.Codec{codec},
		MaxConcurrency:     cfg.Limits.MaxConcurrency,
		MaxConnConcurrency: cfg.Limits.MaxConnConcurrency,
		MaxConns:           cfg.Limits.MaxConns,
		MaxFrame:           int(cfg.Limits.MaxFrame),
		MaxMetadata:        int(cfg.Limits.MaxMetadata),
		IdleTimeout:        cfg.Limits.IdleTimeout,
		HandshakeTimeout:   cfg.Limits.HandshakeTimeout,
		StreamIdleTimeout:  cfg.Limits.StreamIdleTimeout,
		BodyMemory:         cfg.Limits.BodyMemory,
		MaxPeerShare:       cfg.Limits.MaxPeerShare,
		WriteTimeout:       cfg.Limits.WriteTimeout,
		Logger:             st.log.Named(name),
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = -1 // kite.hcl: 0 = never; core: negative disables
	}
	if opts.StreamIdleTimeout == 0 {
		opts.StreamIdleTimeout = -1 // likewise
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = -1 // likewise
	}
	if opts.MaxConcurrency == 0 {
		// kite.hcl: 0 = unlimited; core treats 0 as "default".
		opts.MaxConcurrency = int(^uint(0) >> 2)
	}
	if opts.MaxConnConcurrency == 0 {
		opts.MaxConnConcurrency = int(^uint(0) >> 2) // likewise
	}
	if cfg.Compression != nil {
		comp, err := st.compressor(f, cfg.Compression.Name, at("compression.name"))
		if err != nil {
			return nil, err
		}
		opts.Compressors = []spi.Compressor{comp}
		opts.CompressThreshold = int(cfg.Compression.Threshold)
		if opts.CompressThreshold == 0 {
			opts.CompressThreshold = 1 // 0 in kite.hcl means "compress everything"
		}
	}
	if opts.Filters, err = st.filters(f, cfg.Filters, at("filters")); err != nil {
		return nil, err
	}
	tr, err := st.transport(cfg.Transport, cfg.TLS, nil, at("transport"))
	if err != nil {
		return nil, err
	}
	var reg spi.Registry
	if cfg.Registry != config.NoRegistry {
		if reg, err = st.registry(f, cfg.Registry, at("registry")); err != nil {
			return nil, err
		}
	}
	srv, err := core.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%s: server %q: %w", pos(cfg.DeclRange), name, err)
	}
	if err := st.addHealth(name, cfg, srv); err != nil {
		return nil, fmt.Errorf("%s: server %q: %w", pos(cfg.DeclRange), name, err)
	}
	if err := st.addGRPC(cfg, srv); err != nil { // grpc.go
		return nil, fmt.Errorf("%s: server %q: %w", pos(cfg.DeclRange), name, err)
	}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		_ = srv.Close()
		return nil, errors.New("stack: closed")
	}
	st.servers[srv] = struct{}{}
	st.mu.Unlock()
	return &builtServer{srv: srv, cfg: cfg, transport: tr, registry: reg}, nil
}

func serverNames(f *config.File) []string {
	out := make([]string, 0, len(f.Servers))
	for _, s := range f.Servers {
		out = append(out, s.Name)
	}
	return out
}

// Serve runs the `server "<name>"` block until ctx ends: it builds the
// server, lets register add services to it, listens, and only then —
// once connections are being accepted — registers the instance in the
// configured registry (address = advertise, else the bound listener
// address; weight, version, zone, tags and metadata from the block).
// When ctx ends it deregisters first, so clients stop choosing this
// instance, then shuts the server down gracefully (GOAWAY, drain) within
// shutdown_timeout. It returns nil after a clean drain.
func (st *Stack) Serve(ctx context.Context, name string, register func(*core.Server) error) error {
	return st.ServeNotify(ctx, name, register, nil)
}

// ServeNotify is Serve with a callback run once the server is serving
// and registered, receiving the instance as announced (its Addr is the
// address clients dial, useful with port 0).
func (st *Stack) ServeNotify(ctx context.Context, name string, register func(*core.Server) error, ready func(spi.Instance)) error {
	b, err := st.buildServer(name)
	if err != nil {
		return err
	}
	srv, cfg := b.srv, b.cfg
	defer st.forgetServer(srv)
	defer st.serveStopped(srv)
	if register != nil {
		if err := register(srv); err != nil {
			_ = srv.Close()
			return fmt.Errorf("server %q: registering services: %w", name, err)
		}
	}
	st.serveStarting(srv) // health NOT_SERVING until registered; admin listener up
	ln, err := srv.Listen(ctx, cfg.Listen, b.transport)
	if err != nil {
		_ = srv.Close()
		at := cfg.DeclRange
		if r, ok := cfg.Ranges["listen"]; ok {
			at = r
		}
		return fmt.Errorf("%s: server %q: %w", pos(at), name, err)
	}
	if err := st.listenGRPC(ctx, name, cfg, srv); err != nil { // grpc.go
		_ = srv.Close()
		return err
	}
	in := spi.Instance{
		Service:  cfg.ServiceName,
		Addr:     advertised(cfg, ln),
		Weight:   cfg.Weight,
		Version:  cfg.Version,
		Zone:     cfg.Zone,
		Tags:     cfg.Tags,
		Metadata: cfg.Metadata,
	}
	log := st.log.Named(name)
	if b.registry != nil {
		rctx, cancel := context.WithTimeout(ctx, registryTimeout(cfg))
		err := b.registry.Register(rctx, in)
		cancel()
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("%s: server %q: registering %s in registry %q: %w", pos(cfg.DeclRange), name, in, cfg.Registry, err)
		}
	}
	st.serveReady(srv, in.Addr)
	log.Info("serving", "instance", in.String(), "listen", ln.Addr().String(), "registry", cfg.Registry)
	if ready != nil {
		ready(in)
	}

	<-ctx.Done()

	// NOT_SERVING first, before deregistration and drain, so health
	// checkers (Health.Check, the admin /healthz) stop sending too.
	st.serveDraining(srv)
	// Withdraw first: clients watching the registry stop picking this
	// instance while it still answers; GOAWAY then moves the rest.
	if b.registry != nil {
		dctx, cancel := context.WithTimeout(context.Background(), registryTimeout(cfg))
		if err := b.registry.Deregister(dctx, in); err != nil {
			log.Warn("deregistering failed; the registry drops the instance when its session or lease ends", "instance", in.String(), "error", err)
		}
		cancel()
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("server %q: graceful shutdown did not finish within shutdown_timeout %s: %w", name, cfg.ShutdownTimeout, err)
	}
	log.Info("stopped", "instance", in.String())
	return nil
}

func (st *Stack) forgetServer(srv *core.Server) {
	st.mu.Lock()
	if st.servers != nil {
		delete(st.servers, srv)
	}
	st.mu.Unlock()
}

func registryTimeout(cfg *config.ServerConfig) time.Duration {
	return min(max(cfg.ShutdownTimeout, time.Second), 10*time.Second)
}

// advertised is the address to register: advertise when set, else the
// bound listener address (so port 0 works). A listener on every interface
// (listen = ":9000", "0.0.0.0:9000", "[::]:9000") registers this host's
// first routable address instead of the unspecified one, which no other
// host could dial (see routableAddr).
func advertised(cfg *config.ServerConfig, ln net.Listener) string {
	if cfg.Advertise != "" {
		return cfg.Advertise
	}
	a := ln.Addr()
	if a.Network() == "unix" {
		return "unix://" + a.String()
	}
	return routableAddr(a.String(), upAddrs)
}

// upAddrs lists the addresses of this host's interfaces that are up and not
// loopback.
func upAddrs() ([]net.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []net.Addr
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, err := i.Addrs()
		if err != nil {
			continue
		}
		out = append(out, as...)
	}
	return out, nil
}

// routableAddr replaces an unspecified host in addr ("0.0.0.0", "::") by
// the first global unicast address of this host's interfaces, IPv4 first
// (what Kubernetes gives a pod on eth0), then IPv6; a host with none gets
// the loopback address, so a single-host setup still works. Any other addr
// is returned as it is. ifaddrs is upAddrs, replaceable in tests.
func routableAddr(addr string, ifaddrs func() ([]net.Addr, error)) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsUnspecified() {
		return addr
	}
	var v4, v6 net.IP
	if as, err := ifaddrs(); err == nil {
		for _, a := range as {
			n, ok := a.(*net.IPNet)
			if !ok || !n.IP.IsGlobalUnicast() {
				continue
			}
			if n.IP.To4() != nil {
				if v4 == nil {
					v4 = n.IP
				}
			} else if v6 == nil {
				v6 = n.IP
			}
		}
	}
	// Go's listener on ":port" or "[::]:port" is dual-stack on Linux, so an
	// IPv4 address reaches it whichever wildcard it prints; one on
	// "0.0.0.0" is IPv4 only.
	switch {
	case v4 != nil:
		return net.JoinHostPort(v4.String(), port)
	case v6 != nil && ip.To4() == nil:
		return net.JoinHostPort(v6.String(), port)
	case ip.To4() != nil:
		return net.JoinHostPort("127.0.0.1", port)
	default:
		return net.JoinHostPort("::1", port)
	}
}
