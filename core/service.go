package core

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kiterpc/kite/spi"
)

// MethodDesc describes one unary method. Generated code (kite gen,
// protoc-gen-kite) fills it with direct, typed calls; Register builds it
// by reflection once, at registration.
type MethodDesc struct {
	// Name is the method name within its service, e.g. "GetByID".
	Name string
	// NewRequest returns a fresh value to decode the request into.
	NewRequest func() any
	// Handler runs the method on srv with the decoded request.
	Handler func(ctx context.Context, srv any, req any) (any, error)
	// Idempotent marks methods that may be retried after the request left.
	Idempotent bool
}

// StreamDesc describes one streaming method: server-streaming, client-
// streaming and bidirectional all use the same shape.
type StreamDesc struct {
	Name    string
	Handler func(ctx context.Context, srv any, stream *Stream) error
}

// ServiceDesc describes a service: its name and its methods.
type ServiceDesc struct {
	Name    string
	Methods []MethodDesc
	Streams []StreamDesc
}

// method is an entry of the server's method table.
type method struct {
	full       string // "Service.Method"
	srv        any
	newReq     func() any
	handler    func(ctx context.Context, srv any, req any) (any, error)
	stream     func(ctx context.Context, srv any, stream *Stream) error
	idempotent bool
	// runNs is a moving average of this method's unary calls on the gRPC
	// path, in ns: the connection's reader runs only quick ones itself.
	runNs atomic.Int64
}

// slowCall: a method whose calls take longer than this on average runs
// on workers, not on the gRPC connection's reader.
const slowCall = 50 * time.Microsecond

func (m *method) slow() bool { return m.runNs.Load() > int64(slowCall) }

// observe adds a call's duration to the moving average (1/8 weight; a
// lost update among concurrent calls does not matter). A duration counts
// at most 4 x slowCall: a quick call whose thread was descheduled for a
// millisecond (a busy machine) does not make its method slow alone; a
// method slow call after call still crosses the line in a few calls.
func (m *method) observe(d int64) {
	d = min(d, int64(4*slowCall))
	a := m.runNs.Load()
	m.runNs.Store(a + (d-a)/8)
}

// monoNow is a monotonic clock in ns: one clock read (time.Now reads two).
func monoNow() int64 { return int64(time.Since(monoBase)) }

var monoBase = time.Now()

var (
	ctxType    = reflect.TypeOf((*context.Context)(nil)).Elem()
	errType    = reflect.TypeOf((*error)(nil)).Elem()
	streamType = reflect.TypeOf((*Stream)(nil))
)

// ReflectService builds a ServiceDesc from the exported methods of impl
// that look like
//
//	func (s *T) M(ctx context.Context, req Req) (Resp, error)
//	func (s *T) S(ctx context.Context, stream *core.Stream) error
//
// Methods of any other shape are ignored. Reflection runs here, once; the
// per-call cost is one reflect.Value.Call (generated dispatch avoids even
// that).
func ReflectService(name string, impl any) (*ServiceDesc, error) {
	v := reflect.ValueOf(impl)
	t := v.Type()
	if name == "" {
		name = reflect.Indirect(v).Type().Name()
	}
	if name == "" {
		return nil, fmt.Errorf("kite: service of type %s needs a name", t)
	}
	desc := &ServiceDesc{Name: name}
	for i := 0; i < t.NumMethod(); i++ {
		m := t.Method(i)
		if !m.IsExported() {
			continue
		}
		mt := m.Type // includes the receiver
		switch {
		case mt.NumIn() == 3 && mt.NumOut() == 1 && mt.In(1) == ctxType && mt.In(2) == streamType && mt.Out(0) == errType:
			fn := m.Func
			desc.Streams = append(desc.Streams, StreamDesc{
				Name: m.Name,
				Handler: func(ctx context.Context, srv any, st *Stream) error {
					out := fn.Call([]reflect.Value{reflect.ValueOf(srv), reflect.ValueOf(ctx), reflect.ValueOf(st)})
					err, _ := out[0].Interface().(error)
					return err
				},
			})
		case mt.NumIn() == 3 && mt.NumOut() == 2 && mt.In(1) == ctxType && mt.Out(1) == errType:
			desc.Methods = append(desc.Methods, reflectMethod(m))
		}
	}
	if len(desc.Methods) == 0 && len(desc.Streams) == 0 {
		return nil, fmt.Errorf("kite: %s has no methods of the form M(context.Context, Req) (Resp, error) or S(context.Context, *core.Stream) error", t)
	}
	return desc, nil
}

func reflectMethod(m reflect.Method) MethodDesc {
	argT := m.Type.In(2)
	fn := m.Func
	ptr := argT.Kind() == reflect.Pointer
	var newReq func() any
	if ptr {
		elem := argT.Elem()
		newReq = func() any { return reflect.New(elem).Interface() }
	} else {
		newReq = func() any { return reflect.New(argT).Interface() }
	}
	return MethodDesc{
		Name:       m.Name,
		NewRequest: newReq,
		Handler: func(ctx context.Context, srv any, req any) (any, error) {
			rv := reflect.ValueOf(req)
			if !ptr {
				rv = rv.Elem()
			}
			out := fn.Call([]reflect.Value{reflect.ValueOf(srv), reflect.ValueOf(ctx), rv})
			err, _ := out[1].Interface().(error)
			if err != nil {
				return nil, err
			}
			return out[0].Interface(), nil
		},
	}
}

func (d *ServiceDesc) validate() error {
	if !validServiceName(d.Name) {
		return fmt.Errorf("kite: invalid service name %q: want a name like \"Echo\" or a proto service's full name like \"eco.v1.Inventory\"", d.Name)
	}
	badMethod := func(n string) bool { return strings.ContainsAny(n, "./ \t\r\n") }
	for _, m := range d.Methods {
		if badMethod(m.Name) {
			return fmt.Errorf("kite: service %s: invalid method name %q (no dots, slashes or spaces)", d.Name, m.Name)
		}
	}
	for _, st := range d.Streams {
		if badMethod(st.Name) {
			return fmt.Errorf("kite: service %s: invalid method name %q (no dots, slashes or spaces)", d.Name, st.Name)
		}
	}
	seen := map[string]bool{}
	for _, m := range d.Methods {
		if m.Name == "" || m.Handler == nil || m.NewRequest == nil {
			return fmt.Errorf("kite: service %s: method %q needs a name, NewRequest and Handler", d.Name, m.Name)
		}
		if seen[m.Name] {
			return fmt.Errorf("kite: service %s: method %s declared twice", d.Name, m.Name)
		}
		seen[m.Name] = true
	}
	for _, s := range d.Streams {
		if s.Name == "" || s.Handler == nil {
			return fmt.Errorf("kite: service %s: stream %q needs a name and Handler", d.Name, s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("kite: service %s: method %s declared twice", d.Name, s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// validServiceName: a short name ("Echo") or dot-separated elements
// ("eco.v1.Inventory"), none empty, without slashes or spaces.
func validServiceName(n string) bool {
	if n == "" || strings.ContainsAny(n, "/ \t\r\n") {
		return false
	}
	for _, e := range strings.Split(n, ".") {
		if e == "" {
			return false
		}
	}
	return true
}

// Method names on the wire (docs/PROTOCOL.md, "Method names").
//
// A method is "<service>.<method>", split at the last dot. Services
// generated from .proto files are named by their fully qualified proto
// name ("eco.v1.Inventory.Get", gRPC's "/eco.v1.Inventory/Get"), so two
// packages may declare the same service. Go services registered by
// reflection (Register) or kite gen keep short names without dots
// ("Echo.Say").
//
// For callers that still use the short name of a proto service (stubs
// generated before names were qualified), "Inventory.Get" reaches
// "eco.v1.Inventory.Get" while exactly one registered proto service is
// called Inventory and no Go service is: the alias table below. With two
// (eco.v1 and eco.v2), the short name is refused with the full names to
// use. The call runs under the full name either way, so filters, metrics
// and traces see one name per method. The other way round, a full name
// reaches a Go service registered under its short name (lookupMethod).

// aliasTable maps the short names of a server's qualified services to
// their methods; built at registration, read without locks once serving.
type aliasTable struct {
	methods map[string]*method  // "Inventory.Get" → eco.v1.Inventory's Get
	byShort map[string][]string // "Inventory" → qualified services, sorted
}

// rebuildAliases recomputes s.aliases from s.methods; s.mu is held.
func (s *Server) rebuildAliases() {
	goSvc := map[string]bool{}
	byShort := map[string][]string{}
	seen := map[string]bool{}
	for full := range s.methods {
		svc, _, _ := spi.SplitMethod(full)
		short := spi.ShortService(svc)
		if short == svc {
			goSvc[svc] = true
		} else if !seen[svc] {
			seen[svc] = true
			byShort[short] = append(byShort[short], svc)
		}
	}
	t := aliasTable{methods: map[string]*method{}, byShort: byShort}
	for _, svcs := range byShort {
		sort.Strings(svcs)
	}
	for full, m := range s.methods {
		svc, name, _ := spi.SplitMethod(full)
		short := spi.ShortService(svc)
		if short != svc && !goSvc[short] && len(byShort[short]) == 1 {
			t.methods[short+"."+name] = m
		}
	}
	s.aliases = t
}

// lookupMethod finds the method a call names (Kite's protocol and gRPC
// alike): its own name, else an unambiguous short alias of a proto
// service, else — for a full name "pkg.Svc.M" — a Go service registered
// under the short name "Svc" (it has no package, so it answers any: a
// server with stubs generated before full names, or a Go service called
// by a gRPC client). Registration is over once calls arrive, so no lock
// is taken; the fallbacks cost only calls that miss.
func (s *Server) lookupMethod(name []byte) *method {
	if m := s.methods[string(name)]; m != nil {
		return m
	}
	if m := s.aliases.methods[string(name)]; m != nil {
		return m
	}
	svc, meth, ok := spi.SplitMethod(string(name))
	if !ok {
		return nil
	}
	if short := spi.ShortService(svc); short != svc {
		// s.methods holds full names only, so a short key is a Go
		// service's, never a proto service's alias.
		return s.methods[short+"."+meth]
	}
	return nil
}

// errUnknownMethod is answered for methods not in the table. It says
// what the caller could have called: the full names when a short service
// name is ambiguous, the service's methods when the service exists, else
// the services this server has (at most maxListed names, sorted, so the
// message stays bounded).
func (s *Server) errUnknownMethod(name []byte) *spi.Error {
	const maxListed = 16
	svc, meth, dotted := spi.SplitMethod(string(name))
	list := func(names []string) string {
		sort.Strings(names)
		if len(names) > maxListed {
			return strings.Join(names[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(names)-maxListed)
		}
		return strings.Join(names, ", ")
	}
	if full := s.aliases.byShort[svc]; dotted && len(full) > 1 {
		return spi.Errorf(spi.Unimplemented, "unknown method %q: service name %s is ambiguous on this server (%s); call it by its full name, e.g. %q",
			name, svc, list(append([]string(nil), full...)), full[0]+"."+meth)
	}
	var same []string
	services := map[string]bool{}
	for full := range s.methods {
		sv, m, _ := spi.SplitMethod(full)
		services[sv] = true
		if dotted && sv == svc {
			same = append(same, m)
		}
	}
	if len(same) > 0 {
		return spi.Errorf(spi.Unimplemented, "unknown method %q: service %s has %s", name, svc, list(same))
	}
	if len(services) == 0 {
		return spi.Errorf(spi.Unimplemented, "unknown method %q: this server has no services registered", name)
	}
	names := make([]string, 0, len(services))
	for sv := range services {
		names = append(names, sv)
	}
	return spi.Errorf(spi.Unimplemented, "unknown method %q (want Service.Method): this server has services %s", name, list(names))
}

// Stopping returns a channel closed once Shutdown or Close has begun:
// long-lived streams that would otherwise wait for their callers (such
// as health watches) end on it, so they do not hold a graceful drain.
func (s *Server) Stopping() <-chan struct{} { return s.quit }
