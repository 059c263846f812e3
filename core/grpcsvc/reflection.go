package grpcsvc

import (
	"context"
	"errors"
	"io"
	"reflect"
	"sort"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/health"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// ReflectionService is gRPC's server reflection service name.
const ReflectionService = "grpc.reflection.v1.ServerReflection"

// Register adds gRPC health (answering from h) and server reflection to
// srv, which must have gRPC enabled.
func Register(srv *core.Server, h *health.Service) error {
	if err := RegisterHealth(srv, h); err != nil {
		return err
	}
	return RegisterReflection(srv)
}

// RegisterReflection adds grpc.reflection.v1.ServerReflection to srv.
func RegisterReflection(srv *core.Server) error {
	desc := &core.ServiceDesc{Name: "ServerReflection", Streams: []core.StreamDesc{{
		Name: "ServerReflectionInfo",
		Handler: func(ctx context.Context, _ any, st *core.Stream) error {
			return serveReflection(srv, st)
		},
	}}}
	return srv.RegisterGRPC(ReflectionService, desc, srv)
}

func serveReflection(srv *core.Server, st *core.Stream) error {
	var cat *catalog
	for {
		req := new(rpb.ServerReflectionRequest)
		if err := st.Recv(req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if cat == nil {
			cat = buildCatalog(srv) // services are all registered before serving
		}
		resp := &rpb.ServerReflectionResponse{ValidHost: req.GetHost(), OriginalRequest: req}
		switch mr := req.GetMessageRequest().(type) {
		case *rpb.ServerReflectionRequest_ListServices:
			lr := &rpb.ListServiceResponse{}
			for _, n := range cat.names {
				lr.Service = append(lr.Service, &rpb.ServiceResponse{Name: n})
			}
			resp.MessageResponse = &rpb.ServerReflectionResponse_ListServicesResponse{ListServicesResponse: lr}
		case *rpb.ServerReflectionRequest_FileContainingSymbol:
			answer(resp, cat.bySymbol(mr.FileContainingSymbol), "symbol "+mr.FileContainingSymbol)
		case *rpb.ServerReflectionRequest_FileByFilename:
			answer(resp, cat.byPath(mr.FileByFilename), "file "+mr.FileByFilename)
		default:
			resp.MessageResponse = notFound("extensions are not supported by this server's reflection")
		}
		if err := st.Send(resp); err != nil {
			return err
		}
	}
}

func notFound(msg string) *rpb.ServerReflectionResponse_ErrorResponse {
	return &rpb.ServerReflectionResponse_ErrorResponse{ErrorResponse: &rpb.ErrorResponse{ErrorCode: 5, ErrorMessage: msg}}
}

// catalog is what reflection knows: service names and the files that
// describe them (loaded ones, and ones synthesized for Kite services).
type catalog struct {
	names     []string
	synthetic map[string]protoreflect.FileDescriptor // by path
	symbols   map[string]protoreflect.FileDescriptor // synthesized symbols
}

var protoMessage = reflect.TypeOf((*proto.Message)(nil)).Elem()

func buildCatalog(srv *core.Server) *catalog {
	c := &catalog{synthetic: map[string]protoreflect.FileDescriptor{}, symbols: map[string]protoreflect.FileDescriptor{}}
	bySvc := map[string][]core.MethodInfo{}
	var order []string
	for _, mi := range srv.MethodInfos() {
		if _, ok := bySvc[mi.Service]; !ok {
			order = append(order, mi.Service)
		}
		bySvc[mi.Service] = append(bySvc[mi.Service], mi)
	}
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			c.names = append(c.names, n)
		}
	}
	for _, svc := range order {
		add(c.resolve(svc, bySvc[svc]))
	}
	for _, n := range srv.GRPCServices() {
		add(n)
	}
	sort.Strings(c.names)
	return c
}

// resolve finds the proto name of a Kite service: its own name when that
// is a proto service's full name (protoc-gen-kite stubs), else the
// service of that short name in the file declaring its messages, else a
// synthesized file.
func (c *catalog) resolve(svc string, ms []core.MethodInfo) string {
	if d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc)); err == nil {
		if _, ok := d.(protoreflect.ServiceDescriptor); ok {
			return svc
		}
	}
	var msgs []protoreflect.MessageDescriptor
	for _, mi := range ms {
		for _, t := range []reflect.Type{mi.Request, mi.Response} {
			if t != nil && t.Implements(protoMessage) {
				msgs = append(msgs, reflect.Zero(t).Interface().(proto.Message).ProtoReflect().Descriptor())
			}
		}
	}
	for _, md := range msgs {
		f := md.ParentFile()
		if sd := f.Services().ByName(protoreflect.Name(svc)); sd != nil {
			return string(sd.FullName())
		}
	}
	// Synthesize: the unary methods whose messages are both protobuf.
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("kite/" + svc + ".proto"),
		Package: proto.String("kite"),
		Syntax:  proto.String("proto3"),
	}
	sdp := &descriptorpb.ServiceDescriptorProto{Name: proto.String(svc)}
	deps := map[string]bool{}
	for _, mi := range ms {
		if mi.Stream || mi.Request == nil || mi.Response == nil || !mi.Request.Implements(protoMessage) || !mi.Response.Implements(protoMessage) {
			continue
		}
		in := reflect.Zero(mi.Request).Interface().(proto.Message).ProtoReflect().Descriptor()
		out := reflect.Zero(mi.Response).Interface().(proto.Message).ProtoReflect().Descriptor()
		for _, d := range []protoreflect.MessageDescriptor{in, out} {
			if p := d.ParentFile().Path(); !deps[p] {
				deps[p] = true
				fdp.Dependency = append(fdp.Dependency, p)
			}
		}
		sdp.Method = append(sdp.Method, &descriptorpb.MethodDescriptorProto{
			Name:       proto.String(mi.Method),
			InputType:  proto.String("." + string(in.FullName())),
			OutputType: proto.String("." + string(out.FullName())),
		})
	}
	if len(sdp.Method) == 0 {
		return svc // no schema to describe
	}
	sort.Strings(fdp.Dependency)
	fdp.Service = []*descriptorpb.ServiceDescriptorProto{sdp}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		return svc
	}
	c.synthetic[fd.Path()] = fd
	sd := fd.Services().Get(0)
	c.symbols[string(sd.FullName())] = fd
	for i := 0; i < sd.Methods().Len(); i++ {
		c.symbols[string(sd.Methods().Get(i).FullName())] = fd
	}
	return string(sd.FullName())
}

func (c *catalog) bySymbol(sym string) protoreflect.FileDescriptor {
	if fd := c.symbols[sym]; fd != nil {
		return fd
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(sym))
	if err != nil {
		return nil
	}
	return d.ParentFile()
}

func (c *catalog) byPath(path string) protoreflect.FileDescriptor {
	if fd := c.synthetic[path]; fd != nil {
		return fd
	}
	fd, err := protoregistry.GlobalFiles.FindFileByPath(path)
	if err != nil {
		return nil
	}
	return fd
}

// answer sets resp to fd and every file it imports, transitively, or to
// NOT_FOUND naming what was asked for.
func answer(resp *rpb.ServerReflectionResponse, fd protoreflect.FileDescriptor, what string) {
	if fd == nil {
		resp.MessageResponse = notFound(what + " not found")
		return
	}
	var out [][]byte
	seen := map[string]bool{}
	var walk func(f protoreflect.FileDescriptor)
	walk = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		b, err := proto.Marshal(protodesc.ToFileDescriptorProto(f))
		if err == nil {
			out = append(out, b)
		}
		imps := f.Imports()
		for i := 0; i < imps.Len(); i++ {
			walk(imps.Get(i).FileDescriptor)
		}
	}
	walk(fd)
	resp.MessageResponse = &rpb.ServerReflectionResponse_FileDescriptorResponse{FileDescriptorResponse: &rpb.FileDescriptorResponse{FileDescriptorProto: out}}
}
