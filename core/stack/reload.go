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
	// and servers cannot take in place (registry, service, targets,
	// codec, filters, pool, breaker, server blocks…); they apply to clients and
	// servers built after the reload, and to this process after a restart.
	NeedRestart []string
}

// Reload re-reads the kite.hcl at path (the stack's own file when "")
// and applies client-side changes to the running clients without
// dropping calls: a changed balancer block is built and swapped in with
// core.Client.SetBalancer (calls in flight finish on the old picker), and
// timeouts and method timeouts change atomically. Plugins the new file
// adds are started. If the file does not load, nothing changes.
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
	if err := st.loadPlugins(nf); err != nil {
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
			return nil, err
		}
		s := swap{mc: mc, ncfg: ncfg, comp: comp}
		if discoveryChanged(mc.cfg, ncfg) {
			d := core.Discovery{Service: ncfg.Service, Targets: ncfg.Target}
			if len(ncfg.Target) == 0 {
				rat := ncfg.DeclRange
				if r, ok := ncfg.Ranges["registry"]; ok {
					rat = r
				}
				if d.Registry, err = st.registry(nf, ncfg.Registry, rat); err != nil {
					return nil, err
				}
			}
			s.disc = &d
		}
		if !sameComponent(mc.balancer, comp) {
			v, err := st.build(comp, where)
			if err != nil {
				return nil, err
			}
			st.keep(v)
			s.bal = v.(spi.Balancer)
		}
		swaps = append(swaps, s)
	}
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
				rep.Applied = append(rep.Applied, fmt.Sprintf("client %q: discovery %s → %s", mc.name, describeDiscovery(mc.cfg), describeDiscovery(s.ncfg)))
			}
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
	for _, s := range nf.Servers {
		if prev, ok := old.Server(s.Name); ok && !reflect.DeepEqual(serverShape(prev), serverShape(s)) {
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

func describeDiscovery(c *config.ClientConfig) string {
	if len(c.Target) > 0 {
		return fmt.Sprintf("targets %v", c.Target)
	}
	return fmt.Sprintf("registry %s for %q", c.Registry, c.Service)
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
	cmp("retry", a.Retry, b.Retry)
	cmp("pool", a.Pool, b.Pool)
	cmp("heartbeat", a.Heartbeat, b.Heartbeat)
	// The breakers hold per-endpoint state (ejections, their doubling
	// times) that a new config could not carry over meaningfully, and
	// core.Client has no way to swap them; a restart applies a change.
	cmp("breaker", a.Breaker, b.Breaker)
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
