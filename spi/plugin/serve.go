package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"sync"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/kiterpc/kite/spi"
	pb "github.com/kiterpc/kite/spi/plugin/proto"
)

// CanonicalCodec is implemented by a codec that can convert between the
// canonical form of a message (its JSON encoding) and its own wire bytes
// directly. A codec served out of process receives messages in canonical
// form, because Go values cannot cross a process boundary; without this
// interface the bridge decodes the JSON into generic Go values (maps,
// slices, strings, float64/int64 numbers, bools) and hands those to
// Marshal, which suits schemaless codecs (JSON, msgpack, CBOR) but not
// codecs that need typed values (protobuf): those implement this.
//
// A codec whose wire id is spi.CodecProto receives protobuf messages in
// typed canonical form instead, since their type cannot be recovered
// from JSON: MarshalCanonical gets the message's protojson form packed
// as a google.protobuf.Any ({"@type": "type.googleapis.com/<name>",
// …fields}); UnmarshalCanonical gets the body packed as a
// google.protobuf.Any (type URL naming the message to decode into, value
// the body) and returns the message's plain protojson form.
type CanonicalCodec interface {
	// MarshalCanonical appends the wire encoding of the message whose
	// canonical JSON is in src.
	MarshalCanonical(dst, src []byte) ([]byte, error)
	// UnmarshalCanonical appends the canonical JSON of the message whose
	// wire encoding is in src.
	UnmarshalCanonical(dst, src []byte) ([]byte, error)
}

// Logger returns the logger of a plugin process: hclog JSON lines on
// stderr, which the host parses and logs again under the plugin's name.
// Outside a plugin process it logs to stderr as well.
func Logger() hclog.Logger { return pluginLogger() }

var pluginLogger = sync.OnceValue(func() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "",
		Level:      hclog.Trace,
		Output:     os.Stderr,
		JSONFormat: true,
	})
})

// Serve serves entry as an out-of-process plugin and never returns. A
// plugin binary's main is one line:
//
//	func main() { plugin.Serve(weighted.Entry) }
//
// Started by hand (without the host's handshake environment) it prints a
// short explanation and exits with status 1.
func Serve(entry spi.Entry) {
	logger := pluginLogger()
	// Standard-library log lines go through hclog too, so the host shows
	// them with the plugin's name and a level.
	log.SetFlags(0)
	log.SetOutput(logger.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true}))
	srv := newServer(entry, logger)
	// KITE_PLUGIN_NO_FILTER_CHANNEL=1 in a plugin's env makes it serve
	// filters on gRPC only, as an SDK without the channel does.
	if entry.Kind == spi.KindFilter && os.Getenv("KITE_PLUGIN_NO_FILTER_CHANNEL") != "1" {
		srv.openChannel()
		defer srv.closeChannel()
	}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: pluginSet(srv),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize))...)
		},
		Logger: logger,
	})
	srv.releaseAll()
}

// ServeDefault serves the implementation registered in spi.Default under
// (kind, name) — the catalog compiled-in plugins register into from their
// init — so a plugin main needs only a blank import and one line:
//
//	import _ "github.com/kiterpc/kite/plugins/lb-weighted"
//	func main() { plugin.ServeDefault(spi.KindBalancer, "weighted") }
func ServeDefault(kind spi.Kind, name string) {
	e, ok := spi.Default.Lookup(kind, name)
	if !ok {
		fmt.Fprintf(os.Stderr, "kite plugin: no %s named %q is compiled into this binary (known: %v)\n",
			kind, name, spi.Default.Names(kind))
		os.Exit(2)
	}
	Serve(e)
}

// server is the plugin side of the bridge: the gRPC services of one entry.
type server struct {
	entry  spi.Entry
	logger hclog.Logger

	mu      sync.RWMutex
	handles map[uint64]any

	filters filterCalls
	// channel is the filter channel (filter plugins), nil if it could
	// not be opened.
	channel *channelServer
}

func newServer(entry spi.Entry, logger hclog.Logger) *server {
	return &server{entry: entry, logger: logger, handles: make(map[uint64]any)}
}

func (s *server) register(g *grpc.Server) {
	pb.RegisterPluginServer(g, pluginService{s: s})
	switch s.entry.Kind {
	case spi.KindCodec:
		pb.RegisterCodecServer(g, codecService{s: s})
	case spi.KindCompressor:
		pb.RegisterCompressorServer(g, compressorService{s: s})
	case spi.KindRegistry:
		pb.RegisterRegistryServer(g, registryService{s: s})
	case spi.KindBalancer:
		pb.RegisterBalancerServer(g, balancerService{s: s})
	case spi.KindFilter:
		pb.RegisterFilterServer(g, filterService{s: s})
	}
}

// impl returns the implementation behind handle h.
func (s *server) impl(h uint64) (any, error) {
	s.mu.RLock()
	v, ok := s.handles[h]
	s.mu.RUnlock()
	if !ok {
		return nil, toGRPC(spi.Errorf(spi.FailedPrecondition,
			"%s plugin %q: handle %d is not configured (plugin restarted?)", s.entry.Kind, s.entry.Name, h))
	}
	return v, nil
}

func (s *server) release(h uint64) error {
	s.mu.Lock()
	v, ok := s.handles[h]
	delete(s.handles, h)
	s.mu.Unlock()
	if c, isCloser := v.(spi.Closer); ok && isCloser {
		return c.Close()
	}
	return nil
}

// releaseAll closes every implementation when the host ends the plugin
// gracefully, so registrations are withdrawn rather than left to expire.
func (s *server) releaseAll() {
	s.mu.Lock()
	hs := s.handles
	s.handles = make(map[uint64]any)
	s.mu.Unlock()
	for h, v := range hs {
		if c, ok := v.(spi.Closer); ok {
			if err := c.Close(); err != nil {
				s.logger.Warn("closing implementation", "handle", h, "error", err)
			}
		}
	}
}

type pluginService struct {
	pb.UnimplementedPluginServer
	s *server
}

func (p pluginService) Info(context.Context, *pb.Empty) (*pb.InfoResponse, error) {
	e := p.s.entry
	var ch *pb.FilterChannel
	if p.s.channel != nil {
		ch = p.s.channel.info
	}
	schema := make([]*pb.Field, len(e.Schema))
	for i, f := range e.Schema {
		schema[i] = &pb.Field{Name: f.Name, Type: string(f.Type), Required: f.Required, Doc: f.Doc}
	}
	return &pb.InfoResponse{
		ProtocolVersion: ProtocolVersion,
		Kind:            string(e.Kind),
		Name:            e.Name,
		Version:         e.Version,
		Doc:             e.Doc,
		Schema:          schema,
		Sdk:             runtime.Version() + " kite-sdk",
		FilterChannel:   ch,
	}, nil
}

func (p pluginService) Configure(_ context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	s := p.s
	cfg := spi.Config(req.ConfigJson)
	// Build through a private catalog so the factory result is checked
	// and validated exactly as a compiled-in build would be.
	var cat spi.Catalog
	if err := cat.Add(s.entry); err != nil {
		return nil, toGRPC(spi.WrapError(spi.Internal, err, "%v", err))
	}
	v, err := cat.Build(s.entry.Kind, s.entry.Name, cfg)
	if err != nil {
		return nil, toGRPC(spi.WrapError(spi.InvalidArgument, err, "%v", err))
	}
	resp := &pb.ConfigureResponse{}
	switch impl := v.(type) {
	case spi.Codec:
		resp.Name, resp.Id = impl.Name(), uint32(impl.ID())
	case spi.Compressor:
		resp.Name, resp.Id = impl.Name(), uint32(impl.ID())
	case spi.Balancer:
		resp.Name = impl.Name()
	}
	s.mu.Lock()
	old, had := s.handles[req.Handle]
	s.handles[req.Handle] = v
	s.mu.Unlock()
	if c, ok := old.(spi.Closer); had && ok {
		if err := c.Close(); err != nil {
			s.logger.Warn("closing replaced implementation", "handle", req.Handle, "error", err)
		}
	}
	return resp, nil
}

func (p pluginService) Release(_ context.Context, req *pb.Handle) (*pb.Empty, error) {
	return &pb.Empty{}, toGRPC(p.s.release(req.Handle))
}

// ---------------------------------------------------------------- codec

type codecService struct {
	pb.UnimplementedCodecServer
	s *server
}

func (c codecService) codec(h uint64) (spi.Codec, error) {
	v, err := c.s.impl(h)
	if err != nil {
		return nil, err
	}
	return v.(spi.Codec), nil
}

func (c codecService) Marshal(_ context.Context, req *pb.CodecRequest) (*pb.CodecResponse, error) {
	codec, err := c.codec(req.Handle)
	if err != nil {
		return nil, err
	}
	if cc, ok := codec.(CanonicalCodec); ok {
		out, err := cc.MarshalCanonical(nil, req.Data)
		return &pb.CodecResponse{Data: out}, toGRPC(err)
	}
	v, err := decodeCanonical(req.Data)
	if err != nil {
		return nil, toGRPC(spi.WrapError(spi.InvalidArgument, err, "codec %s: canonical form is not JSON: %v", codec.Name(), err))
	}
	out, err := codec.Marshal(nil, v)
	return &pb.CodecResponse{Data: out}, toGRPC(err)
}

func (c codecService) Unmarshal(_ context.Context, req *pb.CodecRequest) (*pb.CodecResponse, error) {
	codec, err := c.codec(req.Handle)
	if err != nil {
		return nil, err
	}
	if cc, ok := codec.(CanonicalCodec); ok {
		out, err := cc.UnmarshalCanonical(nil, req.Data)
		return &pb.CodecResponse{Data: out}, toGRPC(err)
	}
	var v any
	if err := codec.Unmarshal(req.Data, &v); err != nil {
		return nil, toGRPC(err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, toGRPC(spi.WrapError(spi.Internal, err, "codec %s: decoded value has no canonical JSON form: %v", codec.Name(), err))
	}
	return &pb.CodecResponse{Data: out}, nil
}

// decodeCanonical decodes canonical JSON into generic Go values, keeping
// integers as int64 (so codecs that distinguish them encode integers,
// not floats).
func decodeCanonical(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return numbers(v), nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// ---------------------------------------------------------------- compressor

type compressorService struct {
	pb.UnimplementedCompressorServer
	s *server
}

func (c compressorService) Compress(_ context.Context, req *pb.CompressRequest) (*pb.CodecResponse, error) {
	v, err := c.s.impl(req.Handle)
	if err != nil {
		return nil, err
	}
	out, err := v.(spi.Compressor).Compress(nil, req.Data)
	return &pb.CodecResponse{Data: out}, toGRPC(err)
}

func (c compressorService) Decompress(_ context.Context, req *pb.CompressRequest) (*pb.CodecResponse, error) {
	v, err := c.s.impl(req.Handle)
	if err != nil {
		return nil, err
	}
	out, err := v.(spi.Compressor).Decompress(nil, req.Data, int(req.MaxSize))
	return &pb.CodecResponse{Data: out}, toGRPC(err)
}

// ---------------------------------------------------------------- registry

type registryService struct {
	pb.UnimplementedRegistryServer
	s *server
}

func (r registryService) registry(h uint64) (spi.Registry, error) {
	v, err := r.s.impl(h)
	if err != nil {
		return nil, err
	}
	return v.(spi.Registry), nil
}

func (r registryService) Register(ctx context.Context, req *pb.RegisterRequest) (*pb.Empty, error) {
	reg, err := r.registry(req.Handle)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, toGRPC(reg.Register(ctx, instanceFromPB(req.Instance)))
}

func (r registryService) Deregister(ctx context.Context, req *pb.RegisterRequest) (*pb.Empty, error) {
	reg, err := r.registry(req.Handle)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, toGRPC(reg.Deregister(ctx, instanceFromPB(req.Instance)))
}

func (r registryService) Resolve(ctx context.Context, req *pb.ResolveRequest) (*pb.Instances, error) {
	reg, err := r.registry(req.Handle)
	if err != nil {
		return nil, err
	}
	ins, err := reg.Resolve(ctx, req.Service)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.Instances{Instances: instancesToPB(ins)}, nil
}

func (r registryService) Watch(req *pb.ResolveRequest, stream pb.Registry_WatchServer) error {
	reg, err := r.registry(req.Handle)
	if err != nil {
		return err
	}
	// The stream's context ends when the host cancels the watch or the
	// connection goes away; it bounds the implementation's watch.
	ctx := stream.Context()
	w, err := reg.Watch(ctx, req.Service)
	if err != nil {
		return toGRPC(err)
	}
	defer w.Stop()
	for {
		ins, err := w.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return toGRPC(err)
		}
		if err := stream.Send(&pb.Instances{Instances: instancesToPB(ins)}); err != nil {
			return err
		}
	}
}

func (r registryService) Close(_ context.Context, req *pb.Handle) (*pb.Empty, error) {
	return &pb.Empty{}, toGRPC(r.s.release(req.Handle))
}

// ---------------------------------------------------------------- balancer

type balancerService struct {
	pb.UnimplementedBalancerServer
	s *server
}

func (b balancerService) Build(ctx context.Context, req *pb.BuildRequest) (*pb.PickTable, error) {
	v, err := b.s.impl(req.Handle)
	if err != nil {
		return nil, err
	}
	t := TableOf(ctx, v.(spi.Balancer), instancesFromPB(req.Instances))
	out := &pb.PickTable{Hash: t.HashFunc, Schedule: make([]uint32, len(t.Schedule))}
	for i, idx := range t.Schedule {
		out.Schedule[i] = uint32(idx)
	}
	if len(t.Ring) > 0 {
		out.Ring = make([]*pb.RingPoint, len(t.Ring))
		for i, p := range t.Ring {
			out.Ring[i] = &pb.RingPoint{Hash: p.Hash, Index: uint32(p.Index)}
		}
	}
	return out, nil
}
