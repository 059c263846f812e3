package static

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// Name is the catalog name of this registry.
const Name = "static"

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindRegistry,
		Name:    Name,
		Version: "1.0.0",
		Doc:     "instances listed in kite.hcl; registrations shared in memory within one process",
		Schema: spi.Schema{
			{Name: "addrs", Type: spi.TypeStringList, Doc: `instance addresses, "host:port" or "unix:///path"`},
			{Name: "weights", Type: spi.TypeStringMap, Doc: "per-address weight, e.g. { \"127.0.0.1:9001\" = 3 }; default 100"},
			{Name: "service", Type: spi.TypeString, Doc: "service the addrs serve; empty means every service resolved through this registry"},
			{Name: "group", Type: spi.TypeString, Doc: `in-process namespace shared by static registries (default "default")`},
		},
		New: spi.FactoryOf(New),
	})
}

// Config is the registry's kite.hcl block.
type Config struct {
	// Addrs are the configured instances.
	Addrs []string `json:"addrs,omitempty"`
	// Weights maps an address of Addrs to its weight.
	Weights map[string]Weight `json:"weights,omitempty"`
	// Service limits the configured instances to one service; empty
	// means they serve every service name.
	Service string `json:"service,omitempty"`
	// Group names the in-process store that registrations go to;
	// static registries of one group see each other's registrations.
	Group string `json:"group,omitempty"`
}

// Weight is an instance weight that decodes from a JSON number or a
// numeric string: a map(string) attribute in kite.hcl arrives as strings.
type Weight int

// UnmarshalJSON implements json.Unmarshaler.
func (w *Weight) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("weight %s is not an integer", b)
	}
	*w = Weight(n)
	return nil
}

// Registry is a static registry. It is safe for concurrent use.
type Registry struct {
	service    string
	configured map[string]spi.Instance // addr → instance (Service left empty)
	store      *store
	closed     chan struct{}
	closeOnce  sync.Once
}

var errClosed = spi.Errorf(spi.FailedPrecondition, "static registry: closed")

// New builds a static registry from c.
func New(c Config) (*Registry, error) {
	r := &Registry{service: c.Service, configured: map[string]spi.Instance{}, closed: make(chan struct{})}
	for _, addr := range c.Addrs {
		if err := checkAddr(addr); err != nil {
			return nil, fmt.Errorf("static registry: addrs: %w", err)
		}
		if _, dup := r.configured[addr]; dup {
			return nil, fmt.Errorf("static registry: addrs: %q listed twice", addr)
		}
		r.configured[addr] = spi.Instance{Addr: addr}
	}
	for addr, w := range c.Weights {
		in, ok := r.configured[addr]
		if !ok {
			return nil, fmt.Errorf("static registry: weights: %q is not one of addrs %v", addr, c.Addrs)
		}
		if w < 0 {
			return nil, fmt.Errorf("static registry: weights: %q has negative weight %d", addr, w)
		}
		in.Weight = int(w)
		r.configured[addr] = in
	}
	group := c.Group
	if group == "" {
		group = "default"
	}
	r.store = acquireStore(group)
	return r, nil
}

// checkAddr accepts "host:port" and "unix:///path".
func checkAddr(addr string) error {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if path == "" {
			return fmt.Errorf("%q has no socket path", addr)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port or unix:///path: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("%q has an invalid port", addr)
	}
	return nil
}

func (r *Registry) isClosed() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

// Register implements spi.Registry: in becomes visible to every static
// registry of the same group in this process until Deregister or Close.
func (r *Registry) Register(ctx context.Context, in spi.Instance) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if in.Service == "" || in.Addr == "" {
		return spi.Errorf(spi.InvalidArgument, "static registry: register needs service and addr (got %q, %q)", in.Service, in.Addr)
	}
	if r.isClosed() {
		return errClosed
	}
	r.store.put(registrykit.Clone(in), r)
	return nil
}

// Deregister implements spi.Registry. Configured addresses cannot be
// withdrawn; only registrations are.
func (r *Registry) Deregister(ctx context.Context, in spi.Instance) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.store.remove(in.Service, in.Addr)
	return nil
}

// Resolve implements spi.Registry.
func (r *Registry) Resolve(ctx context.Context, service string) ([]spi.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	snap, _ := r.snapshot(service, false)
	return snap, nil
}

// snapshot merges configured and registered instances of service, sorted
// by address, and, when wait is set, returns the channel closed on the
// service's next change.
func (r *Registry) snapshot(service string, wait bool) ([]spi.Instance, <-chan struct{}) {
	byAddr := map[string]spi.Instance{}
	if r.service == "" || r.service == service {
		for addr, in := range r.configured {
			in.Service = service
			byAddr[addr] = in
		}
	}
	// Registrations override the configuration: they are fresher.
	changed := r.store.collect(service, byAddr, wait)
	out := slices.Collect(maps.Values(byAddr))
	registrykit.SortByAddr(out)
	return out, changed
}

// Watch implements spi.Registry.
func (r *Registry) Watch(ctx context.Context, service string) (spi.Watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.isClosed() {
		return nil, errClosed
	}
	read := func() ([]spi.Instance, <-chan struct{}, error) {
		snap, changed := r.snapshot(service, true)
		return snap, changed, nil
	}
	return registrykit.NewPollWatcher(read, registrykit.PollOptions{
		Closed:     r.closed,
		ErrClosed:  errClosed,
		ErrStopped: errStopped,
	}), nil
}

var errStopped = spi.Errorf(spi.Canceled, "static registry: watch stopped")

// Close implements spi.Registry: it withdraws this registry's
// registrations and ends its watches.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		close(r.closed)
		r.store.removeOwner(r)
		releaseStore(r.store)
	})
	return nil
}

// store is the in-process registration table of one group.
type store struct {
	refs int // guarded by storesMu

	mu      sync.Mutex
	entries map[string]map[string]entry // service → addr → entry
	waiters map[string]chan struct{}    // service → closed on its next change
}

type entry struct {
	in    spi.Instance
	owner *Registry
}

var (
	storesMu sync.Mutex
	stores   = map[string]*store{}
)

func acquireStore(group string) *store {
	storesMu.Lock()
	defer storesMu.Unlock()
	s := stores[group]
	if s == nil {
		s = &store{entries: map[string]map[string]entry{}, waiters: map[string]chan struct{}{}}
		stores[group] = s
	}
	s.refs++
	return s
}

// releaseStore drops a reference; the last one out frees the group so a
// long-lived process that creates many groups does not grow.
func releaseStore(s *store) {
	storesMu.Lock()
	defer storesMu.Unlock()
	s.refs--
	if s.refs > 0 {
		return
	}
	for g, x := range stores {
		if x == s {
			delete(stores, g)
		}
	}
}

// changedLocked wakes the watchers of service; s.mu must be held.
func (s *store) changedLocked(service string) {
	if ch, ok := s.waiters[service]; ok {
		close(ch)
		delete(s.waiters, service)
	}
}

func (s *store) put(in spi.Instance, owner *Registry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.entries[in.Service]
	if m == nil {
		m = map[string]entry{}
		s.entries[in.Service] = m
	}
	m[in.Addr] = entry{in: in, owner: owner}
	s.changedLocked(in.Service)
}

func (s *store) remove(service, addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.entries[service]
	if _, ok := m[addr]; !ok {
		return
	}
	delete(m, addr)
	if len(m) == 0 {
		delete(s.entries, service)
	}
	s.changedLocked(service)
}

func (s *store) removeOwner(owner *Registry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for service, m := range s.entries {
		n := len(m)
		for addr, e := range m {
			if e.owner == owner {
				delete(m, addr)
			}
		}
		if len(m) != n {
			s.changedLocked(service)
		}
		if len(m) == 0 {
			delete(s.entries, service)
		}
	}
}

// collect adds the registrations of service to byAddr and, when wait is
// set, returns the channel closed on the service's next change. Taking
// both under one lock means no change can slip between them.
func (s *store) collect(service string, byAddr map[string]spi.Instance, wait bool) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	for addr, e := range s.entries[service] {
		byAddr[addr] = registrykit.Clone(e.in)
	}
	if !wait {
		return nil
	}
	ch, ok := s.waiters[service]
	if !ok {
		ch = make(chan struct{})
		s.waiters[service] = ch
	}
	return ch
}

var _ spi.Registry = (*Registry)(nil)
