package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"sort"
	"syscall"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/spi"
)

// ReloadReport says what a Reload changed.
type ReloadReport struct {
	// Applied lists changes made in place, e.g.
	// `client "echo": balancer round_robin → weighted`.
	Applied []string
	// NeedRestart lists changes found in the file that running clients
	// and servers cannot take in place (codec, filters, pool, breaker,
	// server blocks, a registry block a server registers through…); they
	// apply to clients and servers built after the reload, and to this
	// process after a restart.
	NeedRestart []string
}

// Reload re-reads the kite.hcl at path (the stack's own file when "")
// and applies client-side changes to the running clients without
// dropping calls: a changed balancer block is built and swapped in with
// core.Client.SetBalancer (calls in flight finish on the old picker), and
// timeouts and method timeouts change atomically. Plugins the new file
// adds are started when a block that is built uses them; a changed
// declaration of a running plugin is refused. If the file does not
// load, nothing changes.
func (st *Stack) Reload(path string) error {
	_, err := st.ReloadReport(path)
	return err
}

// ReloadReport is Reload returning what it did.
func (st *Stack) ReloadReport(path string) (*ReloadReport, error) {
	st.mu.Lock()
	if path == "" {
		path = st.path
	}
	closed := st.closed
	st.mu.Unlock()
	if closed {
		return nil, errors.New("stack: closed")
	}
	nf, err := config.Load(path, st.cat)
	if err != nil {
		return nil, err
	}
	if err := st.checkDecls(nf); err != nil {
		return nil, err
	}
	if err := st.checkPluginConfigs(nf); err != nil {
		return nil, err
	}

	st.mu.Lock()
	clients := make([]*managedClient, 0, len(st.clients))
	for _, mc := range st.clients {
		clients = append(clients, mc)
	}
	old := st.file
	st.mu.Unlock()
	sort.Slice(clients, func(i, j int) bool { return clients[i].name < clients[j].name })

	rep := &ReloadReport{}
	// Build every new balancer before swapping any, so a balancer that
	// fails to build leaves all clients as they were.
	type swap struct {
		mc   *managedClient
		bal  spi.Balancer
		comp *config.Component
		ncfg *config.ClientConfig
		disc *core.Discovery // nil: discovery unchanged
	}
	var swaps []swap
	// Registry blocks whose configuration changed get a new instance for
	// the clients that use them; installed only once every client's new
	// settings were built, closed again when the reload fails.
	fresh := map[string]spi.Registry{}
	failed := func(err error) (*ReloadReport, error) {
		for _, r := range fresh {
			_ = r.Close()
		}
		return nil, err
	}
	for _, mc := range clients {
		ncfg, ok := nf.Client(mc.name)
		if !ok {
			rep.NeedRestart = append(rep.NeedRestart, fmt.Sprintf("client %q: block removed; the running client keeps its settings", mc.name))
			continue
		}
		at := ncfg.DeclRange
		if r, ok := ncfg.Ranges["balancer"]; ok {
			at = r
		}
		comp, where, err := st.component(nf, spi.KindBalancer, ncfg.Balancer, at)
		if err != nil {
			return failed(err)
		}
		s := swap{mc: mc, ncfg: ncfg, comp: comp}
		if discoveryChanged(mc.cfg, ncfg) || registryChanged(old, nf, ncfg) {
			d := core.Discovery{Service: ncfg.Service, Targets: ncfg.Target}
			if len(ncfg.Target) == 0 {
				rat := ncfg.DeclRange
				if r, ok := ncfg.Ranges["registry"]; ok {
					rat = r
				}
				if d.Registry, err = st.reloadRegistry(old, nf, ncfg.Registry, rat, fresh); err != nil {
					return failed(err)
				}
			}
			s.disc = &d
		}
		if !sameComponent(mc.balancer, comp) {
			v, err := st.build(nf, comp, where)
			if err != nil {
				return failed(err)
			}
			st.keep(v)
			s.bal = v.(spi.Balancer)
		}
		swaps = append(swaps, s)
	}
	st.installRegistries(nf, fresh, rep)
	for _, s := range swaps {
		mc := s.mc
		if s.bal != nil {
			mc.client.SetBalancer(s.bal)
			rep.Applied = append(rep.Applied, fmt.Sprintf("client %q: balancer %s → %s", mc.name, describe(mc.balancer), describe(s.comp)))
			st.mu.Lock() // the admin status page reads these
			mc.balancer = s.comp
			st.mu.Unlock()
		}
		if s.disc != nil {
			if err := mc.client.SetDiscovery(*s.disc); err != nil {
				rep.NeedRestart = append(rep.NeedRestart, fmt.Sprintf("client %q: discovery not switched: %v", mc.name, err))
			} else {
				rep.Applied = append(rep.Applied, fmt.Sprintf("client %q: discovery %s → %s", mc.name, describeDiscovery(old, mc.cfg), describeDiscovery(nf, s.ncfg)))
			}
		}
		if ors, nrs := retrySettings(mc.cfg), retrySettings(s.ncfg); !reflect.DeepEqual(ors, nrs) {
			if err := mc.client.SetRetry(nrs); err != nil {
				rep.NeedRestart = append(rep.NeedRestart, fmt.Sprintf("client %q: retry settings not applied: %v", mc.name, err))
			} else {
				rep.Applied = append(rep.Applied, fmt.Sprintf("client %q: retry and method settings replaced", mc.name))
			}
		}
		if !reflect.DeepEqual(mc.cfg.Breaker, s.ncfg.Breaker) {
			// A fresh set: ejection state belongs to the old thresholds.
			mc.client.SetBreaker(*breakerConfig(s.ncfg.Breaker))
			rep.Applied = append(rep.Applied, fmt.Sprintf("client %q: breaker settings replaced (every endpoint back in rotation)", mc.name))
		}
		nt := timeoutsOf(s.ncfg)
		if !mc.timeouts.fixed && !mc.timeouts.cur.Load().equal(nt) {
			mc.timeouts.cur.Store(nt)
			rep.Applied = append(rep.Applied, fmt.Sprintf("client %q: timeouts %s → %s", mc.name, mc.timeouts.describe(timeoutsOf(mc.cfg)), mc.timeouts.describe(nt)))
		}
		for _, d := range clientRestartDiffs(mc.cfg, s.ncfg) {
			rep.NeedRestart = append(rep.NeedRestart, fmt.Sprintf("client %q: %s changed", mc.name, d))
		}
		st.mu.Lock()
		mc.cfg = s.ncfg
		st.mu.Unlock()
	}
	st.reloadLog(old, nf, rep)
	st.reloadListeners(old, nf, rep)
	built := st.builtServers()
	for _, s := range nf.Servers {
		if prev, ok := old.Server(s.Name); ok && built[s.Name] && !reflect.DeepEqual(serverShape(prev), serverShape(s)) {
			rep.NeedRestart = append(rep.NeedRestart, fmt.Sprintf("server %q changed", s.Name))
		}
	}

	st.mu.Lock()
	st.file = nf
	st.path = path
	st.mu.Unlock()
	for _, a := range rep.Applied {
		st.log.Info("reload: applied", "change", a)
	}
	for _, n := range rep.NeedRestart {
		st.log.Warn("reload: needs a restart to take effect", "change", n)
	}
	return rep, nil
}

// discoveryChanged reports whether a client's service, targets or
// registry differ: those a reload switches in place (SetDiscovery).
func discoveryChanged(a, b *config.ClientConfig) bool {
	return a.Service != b.Service || !slices.Equal(a.Target, b.Target) || (len(b.Target) == 0 && a.Registry != b.Registry)
}

// builtServers names the servers this stack built: a server block the
// process does not run needs no restart.
func (st *Stack) builtServers() map[string]bool {
	st.ops.mu.Lock()
	defer st.ops.mu.Unlock()
	out := make(map[string]bool, len(st.ops.servers))
	for _, o := range st.ops.servers {
		out[o.name] = true
	}
	return out
}

// registryChanged reports whether the registry block a registry-based
// client refers to is configured differently in nf than in old.
func registryChanged(old, nf *config.File, c *config.ClientConfig) bool {
	if len(c.Target) > 0 {
		return false
	}
	oc, ok1 := old.Component(spi.KindRegistry, c.Registry)
	nc, ok2 := nf.Component(spi.KindRegistry, c.Registry)
	return ok1 && ok2 && !sameComponent(oc, nc)
}

// reloadRegistry returns the registry ref names in nf: the running
// instance when its block is unchanged since old, else a new one (kept in
// fresh until installRegistries).
func (st *Stack) reloadRegistry(old, nf *config.File, ref string, at hcl.Range, fresh map[string]spi.Registry) (spi.Registry, error) {
	nc, where, err := st.component(nf, spi.KindRegistry, ref, at)
	if err != nil {
		return nil, err
	}
	if r := fresh[nc.Label]; r != nil {
		return r, nil
	}
	st.mu.Lock()
	running := st.registries[nc.Label]
	st.mu.Unlock()
	if oc, ok := old.Component(spi.KindRegistry, ref); running == nil || (ok && sameComponent(oc, nc)) {
		return st.registry(nf, ref, at) // unchanged, or never built: the shared instance
	}
	v, err := st.build(nf, nc, where)
	if err != nil {
		return nil, err
	}
	fresh[nc.Label] = v.(spi.Registry)
	return fresh[nc.Label], nil
}

// installRegistries makes the new registry instances the stack's own. The
// instances they replace stay open (closed with the stack): servers
// registered through them keep their registration until a restart.
func (st *Stack) installRegistries(nf *config.File, fresh map[string]spi.Registry, rep *ReloadReport) {
	if len(fresh) == 0 {
		return
	}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		for _, r := range fresh {
			_ = r.Close()
		}
		return
	}
	for label, r := range fresh {
		if prev := st.registries[label]; prev != nil {
			st.closers = append(st.closers, prev)
		}
		st.registries[label] = r
	}
	st.mu.Unlock()
	built := st.builtServers()
	for _, srv := range nf.Servers {
		if c, ok := nf.Component(spi.KindRegistry, srv.Registry); ok && fresh[c.Label] != nil && built[srv.Name] {
			rep.NeedRestart = append(rep.NeedRestart, fmt.Sprintf("server %q: registry %q changed; the server stays registered through the old one until a restart", srv.Name, c.Label))
		}
	}
}

func describeDiscovery(f *config.File, c *config.ClientConfig) string {
	if len(c.Target) > 0 {
		return fmt.Sprintf("targets %v", c.Target)
	}
	impl := ""
	if comp, ok := f.Component(spi.KindRegistry, c.Registry); ok && comp.Impl != c.Registry {
		impl = " (" + comp.Impl + ")"
	}
	return fmt.Sprintf("registry %s%s for %q", c.Registry, impl, c.Service)
}

func describe(c *config.Component) string {
	if c == nil {
		return "(none)"
	}
	s := c.Impl
	if c.Label != c.Impl {
		s += " " + c.Label
	}
	if len(c.Config) > 2 {
		s += " " + string(c.Config)
	}
	return s
}

func (f *timeoutFilter) describe(t *timeouts) string {
	s := t.def.String()
	keys := make([]string, 0, len(t.methods))
	for k := range t.methods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s += fmt.Sprintf(" %s=%s", k, t.methods[k])
	}
	return s
}

// clientRestartDiffs names the client attributes that differ and cannot
// change in a running client.
func clientRestartDiffs(a, b *config.ClientConfig) []string {
	var out []string
	cmp := func(name string, x, y any) {
		if !reflect.DeepEqual(x, y) {
			out = append(out, name)
		}
	}
	cmp("codec", a.Codec, b.Codec)
	cmp("transport", a.Transport, b.Transport)
	cmp("connect_timeout", a.ConnectTimeout, b.ConnectTimeout)
	cmp("filters", a.Filters, b.Filters)
	cmp("pool", a.Pool, b.Pool)
	cmp("heartbeat", a.Heartbeat, b.Heartbeat)
	cmp("compression", a.Compression, b.Compression)
	cmp("tls", a.TLS, b.TLS)
	return out
}

// serverShape is a server block without source ranges (which move when
// lines are added above it), for comparison.
func serverShape(s *config.ServerConfig) config.ServerConfig {
	c := *s
	c.DeclRange = hcl.Range{}
	c.Ranges = nil
	return c
}

// HandleSIGHUP reloads st from path on every SIGHUP until ctx ends,
// logging what changed (or why the file was refused — the running stack
// then keeps its settings). It blocks; run it in its own goroutine.
func HandleSIGHUP(ctx context.Context, st *Stack, path string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	defer signal.Stop(sig)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			if _, err := st.ReloadReport(path); err != nil {
				st.log.Error("reload on SIGHUP failed; keeping the running settings", "file", path, "error", err)
				var ce *config.Error
				if errors.As(err, &ce) {
					for _, d := range ce.Diags {
						st.log.Error(diagString(d))
					}
				}
			}
		}
	}
}
