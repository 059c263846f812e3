package stack

// Operations wiring: the health service every server exposes, the admin
// listener of the file's `admin` block, and the logger of its `log`
// block. Kept apart from the assembly code so the hooks in Serve, Load,
// Reload and Close stay one line each.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/admin"
	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/core/health"
	"github.com/kiterpc/kite/spi"
)

// WithMetricsGatherer makes the admin listener's /metrics serve g instead
// of prometheus.DefaultGatherer (where the metrics filter registers
// unless told otherwise).
func WithMetricsGatherer(g prometheus.Gatherer) Option {
	return func(o *options) { o.gatherer = g }
}

// ops is a stack's operations state.
type ops struct {
	started  time.Time
	gatherer prometheus.Gatherer
	// ownLogger is set when the stack built its logger from the log block
	// (and so may change its level on reload).
	ownLogger bool

	mu       sync.Mutex
	servers  map[*core.Server]*opsServer // every server built, in build order by seq
	seq      int
	admin    *admin.Server
	adminErr error
	probes   *admin.Probes
	probeErr error
}

// opsServer is what the admin listener and health need of one server.
type opsServer struct {
	seq    int
	name   string
	cfg    *config.ServerConfig
	srv    *core.Server
	health *health.Service
	served atomic.Bool // Serve ran it (as opposed to Server, for the caller to serve)

	mu    sync.Mutex
	state string
	addr  string
}

func (o *opsServer) setState(s string) {
	o.mu.Lock()
	o.state = s
	o.mu.Unlock()
}

// logger returns the logger the log block asks for.
func logFromBlock(l *config.Log) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "kite",
		Level:      l.HCLogLevel(),
		JSONFormat: l.JSON(),
		Output:     os.Stderr,
	})
}

// Health returns the health service of srv, a server this stack built
// (nil otherwise). Serve keeps it up to date; a program that serves a
// server from Server itself sets the statuses.
func (st *Stack) Health(srv *core.Server) *health.Service {
	st.ops.mu.Lock()
	defer st.ops.mu.Unlock()
	if o := st.ops.servers[srv]; o != nil {
		return o.health
	}
	return nil
}

// addHealth registers the Health service on a newly built server.
func (st *Stack) addHealth(name string, cfg *config.ServerConfig, srv *core.Server) error {
	h := health.NewService()
	if err := health.Register(srv, h); err != nil {
		return err
	}
	st.ops.mu.Lock()
	defer st.ops.mu.Unlock()
	if st.ops.servers == nil {
		st.ops.servers = map[*core.Server]*opsServer{}
	}
	st.ops.seq++
	st.ops.servers[srv] = &opsServer{seq: st.ops.seq, name: name, cfg: cfg, srv: srv, health: h, state: admin.StateStarting, addr: cfg.Listen}
	return nil
}

func (st *Stack) opsServer(srv *core.Server) *opsServer {
	st.ops.mu.Lock()
	defer st.ops.mu.Unlock()
	return st.ops.servers[srv]
}

// serveStarting marks srv as being started by Serve: nothing is SERVING
// until it is registered. The admin listener starts now, so /healthz
// answers (503) while the server comes up.
func (st *Stack) serveStarting(srv *core.Server) {
	o := st.opsServer(srv)
	if o == nil {
		return
	}
	o.served.Store(true)
	o.health.SetServing("", false)
	for _, svc := range serviceNames(srv) {
		o.health.SetServing(svc, false)
	}
	if st.File().Admin != nil {
		if _, err := st.StartAdmin(); err != nil {
			st.log.Error("admin listener did not start; serving without it", "error", err)
		}
	}
	if st.File().Probes != nil {
		if _, err := st.StartProbes(); err != nil {
			st.log.Error("probe listener did not start; serving without it", "error", err)
		}
	}
}

// serveReady marks srv as serving at addr: every service turns SERVING.
func (st *Stack) serveReady(srv *core.Server, addr string) {
	o := st.opsServer(srv)
	if o == nil {
		return
	}
	o.mu.Lock()
	o.addr = addr
	o.state = admin.StateServing
	o.mu.Unlock()
	for _, svc := range serviceNames(srv) {
		o.health.SetServing(svc, true)
	}
	o.health.SetServing("", true)
}

// serveDraining is the first step of a shutdown, before deregistration
// and drain: every status turns NOT_SERVING, so /healthz and
// Health.Check tell load balancers to stop sending.
func (st *Stack) serveDraining(srv *core.Server) {
	if o := st.opsServer(srv); o != nil {
		o.health.Shutdown()
		o.setState(admin.StateDraining)
	}
}

// serveStopped marks srv as stopped; it stays listed (NOT_SERVING) so
// /healthz reports a process whose server has stopped as unhealthy.
func (st *Stack) serveStopped(srv *core.Server) {
	if o := st.opsServer(srv); o != nil {
		o.health.Shutdown()
		o.setState(admin.StateStopped)
	}
}

// serviceNames lists srv's services except Health, sorted.
func serviceNames(srv *core.Server) []string {
	seen := map[string]bool{}
	for _, m := range srv.Methods() {
		svc, _, _ := spi.SplitMethod(m) // "eco.v1.Inventory.Get" → eco.v1.Inventory
		if svc != health.ServiceName {
			seen[svc] = true
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// StartAdmin starts the admin listener of the file's admin block, once;
// later calls return the same address. Serve calls it for servers; a
// program with clients only calls it itself. Close stops it.
func (st *Stack) StartAdmin() (string, error) {
	f := st.File()
	if f.Admin == nil {
		return "", errors.New("stack: the kite.hcl has no admin block")
	}
	st.ops.mu.Lock()
	defer st.ops.mu.Unlock()
	if st.ops.admin != nil {
		return st.ops.admin.Addr(), nil
	}
	if st.ops.adminErr != nil {
		return "", st.ops.adminErr
	}
	a, err := admin.New(admin.Options{
		Listen: f.Admin.Listen, Pprof: f.Admin.Pprof, Source: stackSource{st},
		Gatherer: st.ops.gatherer, Logger: st.log,
	})
	if err == nil {
		err = a.Start()
	}
	if err != nil {
		st.ops.adminErr = fmt.Errorf("%s: %w", pos(f.Admin.DeclRange), err)
		return "", st.ops.adminErr
	}
	st.ops.admin = a
	return a.Addr(), nil
}

// AdminAddr returns the admin listener's bound address, "" when it is not
// running.
func (st *Stack) AdminAddr() string {
	st.ops.mu.Lock()
	defer st.ops.mu.Unlock()
	if st.ops.admin == nil {
		return ""
	}
	return st.ops.admin.Addr()
}

// StartProbes starts the probe listener of the file's probes block
// (/healthz liveness, /readyz readiness), once; later calls return the
// same address. Serve calls it for servers; a program with clients only
// calls it itself. Close stops it. Readiness waits for a first server
// when the file declares any.
func (st *Stack) StartProbes() (string, error) {
	f := st.File()
	if f.Probes == nil {
		return "", errors.New("stack: the kite.hcl has no probes block")
	}
	st.ops.mu.Lock()
	defer st.ops.mu.Unlock()
	if st.ops.probes != nil {
		return st.ops.probes.Addr(), nil
	}
	if st.ops.probeErr != nil {
		return "", st.ops.probeErr
	}
	p, err := admin.NewProbes(admin.ProbeOptions{
		Listen: f.Probes.Listen, Source: stackSource{st}, WantServers: len(f.Servers) > 0, Logger: st.log,
	})
	if err == nil {
		err = p.Start()
	}
	if err != nil {
		st.ops.probeErr = fmt.Errorf("%s: %w", pos(f.Probes.DeclRange), err)
		return "", st.ops.probeErr
	}
	st.ops.probes = p
	return p.Addr(), nil
}

// ProbesAddr returns the probe listener's bound address, "" when it is
// not running.
func (st *Stack) ProbesAddr() string {
	st.ops.mu.Lock()
	defer st.ops.mu.Unlock()
	if st.ops.probes == nil {
		return ""
	}
	return st.ops.probes.Addr()
}

// closeAdmin stops the admin and probe listeners (on Close), the last
// thing Close does: until then /readyz answers 503 and /healthz 200.
func (st *Stack) closeAdmin() error {
	st.ops.mu.Lock()
	a, p := st.ops.admin, st.ops.probes
	st.ops.admin, st.ops.probes = nil, nil
	st.ops.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	if a != nil {
		errs = append(errs, a.Close(ctx))
	}
	if p != nil {
		errs = append(errs, p.Close(ctx))
	}
	return errors.Join(errs...)
}

// reloadListeners reports a changed admin or probes block: the
// listeners keep their settings until a restart.
func (st *Stack) reloadListeners(old, nf *config.File, rep *ReloadReport) {
	if adminKey(old.Admin) != adminKey(nf.Admin) {
		rep.NeedRestart = append(rep.NeedRestart, "admin block changed")
	}
	if probesKey(old.Probes) != probesKey(nf.Probes) {
		rep.NeedRestart = append(rep.NeedRestart, "probes block changed")
	}
}

func adminKey(a *config.Admin) string {
	if a == nil {
		return ""
	}
	return fmt.Sprintf("%s pprof=%t", a.Listen, a.Pprof)
}

func probesKey(p *config.Probes) string {
	if p == nil {
		return ""
	}
	return p.Listen
}

// reloadLog applies a changed log level to a logger the stack built.
func (st *Stack) reloadLog(old, nf *config.File, rep *ReloadReport) {
	if old.Log == nil && nf.Log == nil {
		return
	}
	if !st.ops.ownLogger || old.Log == nil || nf.Log == nil {
		rep.NeedRestart = append(rep.NeedRestart, "log block added or removed")
		return
	}
	if old.Log.Level != nf.Log.Level {
		st.log.SetLevel(nf.Log.HCLogLevel())
		rep.Applied = append(rep.Applied, fmt.Sprintf("log level %s → %s", old.Log.Level, nf.Log.Level))
	}
	if old.Log.Format != nf.Log.Format {
		rep.NeedRestart = append(rep.NeedRestart, fmt.Sprintf("log format %s → %s", old.Log.Format, nf.Log.Format))
	}
}

// ---------------------------------------------------------------------
// admin.Source over a Stack.

type stackSource struct{ st *Stack }

func (s stackSource) servers() []*opsServer {
	st := s.st
	st.ops.mu.Lock()
	out := make([]*opsServer, 0, len(st.ops.servers))
	for _, o := range st.ops.servers {
		// A server built with Server and never served is the program's
		// business: listed only once Serve runs it.
		if o.served.Load() {
			out = append(out, o)
		}
	}
	st.ops.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

func (s stackSource) Health() []admin.ServerHealth {
	var out []admin.ServerHealth
	for _, o := range s.servers() {
		o.mu.Lock()
		state := o.state
		o.mu.Unlock()
		sh := admin.ServerHealth{Name: o.name, State: state, Services: map[string]string{}}
		for svc, stat := range o.health.Statuses() {
			if svc == "" {
				sh.Status = string(stat)
			} else {
				sh.Services[svc] = string(stat)
			}
		}
		out = append(out, sh)
	}
	return out
}

// inFlighter is implemented by core.Server once core exposes its count of
// calls in progress; until then the page shows n/a.
func (s stackSource) Snapshot(ctx context.Context) admin.Snapshot {
	st := s.st
	f := st.File()
	snap := admin.Snapshot{Config: f.Filename, Started: st.ops.started}
	for _, o := range s.servers() {
		o.mu.Lock()
		state, addr := o.state, o.addr
		o.mu.Unlock()
		si := admin.ServerInfo{
			Name: o.name, Service: o.cfg.ServiceName, Listen: o.cfg.Listen, Addr: addr, Registry: o.cfg.Registry,
			State: state, Conns: o.srv.Conns(), InFlight: o.srv.InFlight(),
		}
		stats := o.health.Statuses()
		si.Status = string(stats[""])
		methods := map[string][]string{}
		for _, m := range o.srv.Methods() {
			svc, name, _ := spi.SplitMethod(m)
			methods[svc] = append(methods[svc], name)
		}
		svcs := make([]string, 0, len(methods))
		for svc := range methods {
			svcs = append(svcs, svc)
		}
		sort.Strings(svcs)
		for _, svc := range svcs {
			ms := methods[svc]
			sort.Strings(ms)
			status := string(stats[svc])
			if svc == health.ServiceName {
				status = si.Status
			}
			si.Services = append(si.Services, admin.ServiceInfo{Name: svc, Status: status, Methods: ms})
		}
		snap.Servers = append(snap.Servers, si)
	}

	st.mu.Lock()
	clients := make([]*managedClient, 0, len(st.clients))
	for _, mc := range st.clients {
		clients = append(clients, mc)
	}
	regs := make(map[string]spi.Registry, len(st.registries))
	for l, r := range st.registries {
		regs[l] = r
	}
	st.mu.Unlock()
	sort.Slice(clients, func(i, j int) bool { return clients[i].name < clients[j].name })
	for _, mc := range clients {
		st.mu.Lock()
		cfg, bal := mc.cfg, mc.balancer
		st.mu.Unlock()
		ci := admin.ClientInfo{
			Name: mc.name, Service: cfg.Service, Balancer: describe(bal), Registry: cfg.Registry,
			Targets: cfg.Target, Instances: mc.client.Instances(), Stats: mc.client.Stats(),
		}
		snap.Clients = append(snap.Clients, ci)
	}

	for _, p := range st.Plugins() {
		snap.Plugins = append(snap.Plugins, admin.PluginInfo{
			Kind: string(p.Kind), Name: p.Name, Version: p.Version, Source: p.Source, SHA256: p.SHA256, Pid: p.Pid,
		})
	}

	// The registry view: registries have no portable way to list
	// services, so each one is asked for the services this file names on
	// it (as `kite registry ls` does).
	labels := make([]string, 0, len(regs))
	for l := range regs {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		ri := admin.RegistryInfo{Label: l, Impl: l}
		if c, ok := f.Component(spi.KindRegistry, l); ok {
			ri.Impl = c.Impl
		}
		for _, svc := range servicesOn(f, l) {
			rs := admin.RegistryService{Service: svc}
			ins, err := regs[l].Resolve(ctx, svc)
			if err != nil {
				rs.Error = err.Error()
			}
			sort.Slice(ins, func(i, j int) bool { return ins[i].Addr < ins[j].Addr })
			rs.Instances = ins
			ri.Services = append(ri.Services, rs)
		}
		snap.Registries = append(snap.Registries, ri)
	}
	return snap
}

// servicesOn lists the services f's servers and clients name on the
// registry labelled label.
func servicesOn(f *config.File, label string) []string {
	seen := map[string]bool{}
	for _, s := range f.Servers {
		if s.Registry == label {
			seen[s.ServiceName] = true
		}
	}
	for _, c := range f.Clients {
		if c.Registry == label && len(c.Target) == 0 {
			seen[c.Service] = true
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
