package core

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"

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
}

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
	if d.Name == "" || strings.ContainsAny(d.Name, ". ") {
		return fmt.Errorf("kite: invalid service name %q", d.Name)
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

// errUnknownMethod is answered for methods not in the table. It says
// what the caller could have called: the service's methods when the
// service exists, else the services this server has (at most
// maxListed names, sorted, so the message stays bounded).
func errUnknownMethod(name []byte, methods map[string]*method) *spi.Error {
	const maxListed = 16
	svc, _, dotted := strings.Cut(string(name), ".")
	var same []string
	services := map[string]bool{}
	for full := range methods {
		s, m, _ := strings.Cut(full, ".")
		services[s] = true
		if dotted && s == svc {
			same = append(same, m)
		}
	}
	list := func(names []string) string {
		sort.Strings(names)
		if len(names) > maxListed {
			return strings.Join(names[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(names)-maxListed)
		}
		return strings.Join(names, ", ")
	}
	if len(same) > 0 {
		return spi.Errorf(spi.Unimplemented, "unknown method %q: service %s has %s", name, svc, list(same))
	}
	if len(services) == 0 {
		return spi.Errorf(spi.Unimplemented, "unknown method %q: this server has no services registered", name)
	}
	names := make([]string, 0, len(services))
	for s := range services {
		names = append(names, s)
	}
	return spi.Errorf(spi.Unimplemented, "unknown method %q (want Service.Method): this server has services %s", name, list(names))
}
