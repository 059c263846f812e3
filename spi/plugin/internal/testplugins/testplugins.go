// Package testplugins holds small implementations of each SPI kind that
// spi/plugin's tests serve through the bridge and compare with compiled-in
// use. They are real implementations (the registry watches, the filter
// short-circuits), just minimal.
package testplugins

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/kiterpc/kite/spi"
)

// Entries returns one catalog entry per kind.
func Entries() []spi.Entry {
	return []spi.Entry{
		{Kind: spi.KindRegistry, Name: "mem", Version: "1.0.0", Doc: "in-memory registry",
			Schema: spi.Schema{
				{Name: "store", Type: spi.TypeString, Doc: "name of the shared in-memory store"},
				{Name: "prefix", Type: spi.TypeString, Doc: "prepended to service names"},
			},
			New: func(cfg spi.Config) (any, error) {
				var c struct {
					Store  string `json:"store"`
					Prefix string `json:"prefix"`
				}
				if err := cfg.Decode(&c); err != nil {
					return nil, err
				}
				return NewMemRegistry(c.Store, c.Prefix), nil
			}},
		{Kind: spi.KindFilter, Name: "guard", Version: "1.0.0", Doc: "stamps metadata, denies methods",
			Schema: spi.Schema{{Name: "deny", Type: spi.TypeStringList}, {Name: "stamp", Type: spi.TypeString},
				{Name: "before_only", Type: spi.TypeBool}, {Name: "panic_on", Type: spi.TypeString},
				{Name: "block_on", Type: spi.TypeString}},
			New: func(cfg spi.Config) (any, error) {
				var c GuardConfig
				if err := cfg.Decode(&c); err != nil {
					return nil, err
				}
				if c.BeforeOnly {
					return &BeforeOnlyGuard{Guard{cfg: c}}, nil
				}
				return &Guard{cfg: c}, nil
			}},
		{Kind: spi.KindBalancer, Name: "wrr", Version: "1.0.0", Doc: "smooth weighted round-robin (picker only)",
			New: func(spi.Config) (any, error) { return WRR{}, nil }},
		{Kind: spi.KindCodec, Name: "tjson", Version: "1.0.0", Doc: "JSON codec with id 200",
			New: func(spi.Config) (any, error) { return JSONCodec{}, nil }},
	}
}

// Lookup returns the entry of kind.
func Lookup(kind spi.Kind) (spi.Entry, bool) {
	for _, e := range Entries() {
		if e.Kind == kind {
			return e, true
		}
	}
	return spi.Entry{}, false
}

// ---------------------------------------------------------------- registry

// store is one in-memory backend shared by every MemRegistry client
// configured with the same store name, as clients of one ZooKeeper
// ensemble share it.
type store struct {
	mu   sync.Mutex
	svcs map[string]map[string]memEntry // service → addr → entry
	ver  map[string]chan struct{}       // closed on change of a service
}

type memEntry struct {
	in    spi.Instance
	owner *MemRegistry
}

var stores = struct {
	sync.Mutex
	m map[string]*store
}{m: map[string]*store{}}

func storeNamed(name string) *store {
	stores.Lock()
	defer stores.Unlock()
	s := stores.m[name]
	if s == nil {
		s = &store{svcs: map[string]map[string]memEntry{}, ver: map[string]chan struct{}{}}
		stores.m[name] = s
	}
	return s
}

// changed wakes the watchers of svc; s.mu is held.
func (s *store) changed(svc string) {
	if ch, ok := s.ver[svc]; ok {
		close(ch)
	}
	s.ver[svc] = make(chan struct{})
}

// snapshot returns svc's instances sorted by address and the channel
// closed on its next change; s.mu is held.
func (s *store) snapshot(svc string) ([]spi.Instance, chan struct{}) {
	out := make([]spi.Instance, 0, len(s.svcs[svc]))
	for _, e := range s.svcs[svc] {
		out = append(out, e.in)
	}
	slices.SortFunc(out, func(a, b spi.Instance) int { return strings.Compare(a.Addr, b.Addr) })
	if s.ver[svc] == nil {
		s.ver[svc] = make(chan struct{})
	}
	return out, s.ver[svc]
}

// MemRegistry is one client of an in-memory store.
type MemRegistry struct {
	prefix string
	s      *store
	closed chan struct{}
	once   sync.Once
}

// NewMemRegistry returns a client of the store named store.
func NewMemRegistry(store, prefix string) *MemRegistry {
	return &MemRegistry{prefix: prefix, s: storeNamed(store), closed: make(chan struct{})}
}

func (r *MemRegistry) isClosed() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

func (r *MemRegistry) Register(_ context.Context, in spi.Instance) error {
	if in.Service == "" || in.Addr == "" {
		return spi.Errorf(spi.InvalidArgument, "instance needs service and addr")
	}
	if r.isClosed() {
		return spi.Errorf(spi.FailedPrecondition, "registry closed")
	}
	in.Tags = slices.Clone(in.Tags)
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := r.prefix + in.Service
	if s.svcs[svc] == nil {
		s.svcs[svc] = map[string]memEntry{}
	}
	s.svcs[svc][in.Addr] = memEntry{in: in, owner: r}
	s.changed(svc)
	return nil
}

func (r *MemRegistry) Deregister(_ context.Context, in spi.Instance) error {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := r.prefix + in.Service
	if _, ok := s.svcs[svc][in.Addr]; ok {
		delete(s.svcs[svc], in.Addr)
		s.changed(svc)
	}
	return nil
}

func (r *MemRegistry) Resolve(_ context.Context, service string) ([]spi.Instance, error) {
	if service == "missing" {
		return nil, spi.Errorf(spi.NotFound, "service %q is not known", service)
	}
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	out, _ := r.s.snapshot(r.prefix + service)
	return out, nil
}

func (r *MemRegistry) Watch(_ context.Context, service string) (spi.Watcher, error) {
	if service == "missing" {
		return nil, spi.Errorf(spi.NotFound, "service %q is not known", service)
	}
	if r.isClosed() {
		return nil, spi.Errorf(spi.FailedPrecondition, "registry closed")
	}
	return &memWatcher{r: r, svc: r.prefix + service, stop: make(chan struct{})}, nil
}

// Close withdraws this client's registrations and ends its watches.
func (r *MemRegistry) Close() error {
	r.once.Do(func() {
		close(r.closed)
		s := r.s
		s.mu.Lock()
		defer s.mu.Unlock()
		for svc, m := range s.svcs {
			gone := false
			for addr, e := range m {
				if e.owner == r {
					delete(m, addr)
					gone = true
				}
			}
			if gone {
				s.changed(svc)
			}
		}
	})
	return nil
}

type memWatcher struct {
	r     *MemRegistry
	svc   string
	seen  chan struct{}
	last  []spi.Instance
	stop  chan struct{}
	once  sync.Once
	first bool
}

func (w *memWatcher) Next(ctx context.Context) ([]spi.Instance, error) {
	for {
		select {
		case <-w.stop:
			return nil, spi.Errorf(spi.Canceled, "watch stopped")
		case <-w.r.closed:
			return nil, spi.Errorf(spi.Canceled, "registry closed")
		default:
		}
		w.r.s.mu.Lock()
		out, ch := w.r.s.snapshot(w.svc)
		w.r.s.mu.Unlock()
		changed := !w.first || (ch != w.seen && !slices.EqualFunc(out, w.last, sameInstance))
		w.seen = ch
		if changed {
			w.first = true
			w.last = out
			return out, nil
		}
		select {
		case <-ch:
		case <-w.stop:
		case <-w.r.closed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func sameInstance(a, b spi.Instance) bool {
	return a.Addr == b.Addr && a.Weight == b.Weight && a.Version == b.Version && a.Zone == b.Zone &&
		slices.Equal(a.Tags, b.Tags) && maps.Equal(a.Metadata, b.Metadata)
}

func (w *memWatcher) Stop() { w.once.Do(func() { close(w.stop) }) }

// ---------------------------------------------------------------- filter

// GuardConfig configures Guard.
type GuardConfig struct {
	Deny  []string `json:"deny"`
	Stamp string   `json:"stamp"`
	// BeforeOnly makes it a spi.BeforeOnlyFilter that does nothing
	// after next (no x-result, no error mapping).
	BeforeOnly bool `json:"before_only"`
	// PanicOn is a method whose calls make the filter panic, with a
	// value that names the method and "secret-in-panic".
	PanicOn string `json:"panic_on"`
	// BlockOn is a method whose calls wait in the filter, before next,
	// until their context ends, and then fail with its error.
	BlockOn string `json:"block_on"`
}

// Guard denies listed methods with PermissionDenied, stamps "x-stamp" on
// the request metadata, and after the call sets "x-result" in the trailer
// and turns an Internal error into Unavailable with a message of its own.
type Guard struct{ cfg GuardConfig }

func (g *Guard) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		if slices.Contains(g.cfg.Deny, call.Method) {
			return spi.Errorf(spi.PermissionDenied, "method %s is denied", call.Method)
		}
		if g.cfg.BlockOn != "" && call.Method == g.cfg.BlockOn {
			<-ctx.Done()
			return spi.Errorf(spi.DeadlineExceeded, "guard: %v", ctx.Err())
		}
		if g.cfg.PanicOn != "" && call.Method == g.cfg.PanicOn {
			panic("guard: secret-in-panic for " + call.Method)
		}
		if g.cfg.Stamp != "" {
			call.Meta.Set("x-stamp", g.cfg.Stamp)
		}
		if g.cfg.BeforeOnly {
			return next(ctx, call)
		}
		err := next(ctx, call)
		call.Trailer.Set("x-result", spi.CodeOf(err).String())
		if spi.CodeOf(err) == spi.Internal {
			return spi.Errorf(spi.Unavailable, "guard: backend failed: %s", spi.AsError(err).Message)
		}
		return err
	}
}

// BeforeOnlyGuard is a Guard configured before_only: an
// spi.BeforeOnlyFilter.
type BeforeOnlyGuard struct{ Guard }

// BeforeOnly implements spi.BeforeOnlyFilter.
func (*BeforeOnlyGuard) BeforeOnly() {}

// ---------------------------------------------------------------- balancer

// WRR is smooth weighted round-robin with a mutex-guarded picker; it does
// not implement spi.TableBalancer, so the bridge samples it.
type WRR struct{}

func (WRR) Name() string { return "wrr" }

func (WRR) Build(instances []spi.Instance) spi.Picker {
	p := &wrrPicker{ins: append([]spi.Instance(nil), instances...), cur: make([]int, len(instances))}
	return p
}

type wrrPicker struct {
	mu  sync.Mutex
	ins []spi.Instance
	cur []int
}

func (p *wrrPicker) Pick(context.Context, spi.PickInfo) (spi.PickResult, error) {
	if len(p.ins) == 0 {
		return spi.PickResult{}, spi.ErrNoInstance
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	best, total := 0, 0
	for i, in := range p.ins {
		w := in.EffectiveWeight()
		total += w
		p.cur[i] += w
		if p.cur[i] > p.cur[best] {
			best = i
		}
	}
	p.cur[best] -= total
	return spi.PickResult{Instance: p.ins[best]}, nil
}

// ---------------------------------------------------------------- codec

// JSONCodec is encoding/json under wire id 200.
type JSONCodec struct{}

func (JSONCodec) Name() string { return "tjson" }
func (JSONCodec) ID() uint8    { return 200 }
func (JSONCodec) Marshal(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}
func (JSONCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
