package plugin

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/kiterpc/kite/spi/plugin/proto"
)

// ProtocolVersion is the version of the bridge protocol
// (spi/plugin/proto/kiteplugin.proto) this package speaks. It is
// negotiated in go-plugin's handshake: a host and a plugin that share no
// version refuse each other with a clear message instead of failing later.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake of Kite plugins. The magic cookie
// is not a secret: it only stops a user from running a plugin binary by
// hand, and stops Kite from starting a binary that is not a Kite plugin.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "KITE_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "8c7a0f3e-kite-plugin-bridge-1c5d92e4b6",
}

// MaxMessageSize bounds one message across the bridge (a codec's or
// compressor's body, a registry snapshot), in both directions. gRPC's
// default of 4 MiB is below what a Kite frame may carry.
const MaxMessageSize = 128 << 20

// pluginName is the single go-plugin "plugin" every Kite binary serves;
// the kind is told by the Info rpc.
const pluginName = "kite"

// bridge is the go-plugin GRPCPlugin: on the plugin side it registers the
// services of one entry, on the host side it makes the clients.
type bridge struct {
	goplugin.NetRPCUnsupportedPlugin
	srv *server // plugin side only
}

func (b *bridge) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	b.srv.register(s)
	return nil
}

// clients are the gRPC stubs of one plugin process.
type clients struct {
	plugin     pb.PluginClient
	codec      pb.CodecClient
	compressor pb.CompressorClient
	registry   pb.RegistryClient
	balancer   pb.BalancerClient
	filter     pb.FilterClient
}

func (b *bridge) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &clients{
		plugin:     pb.NewPluginClient(cc),
		codec:      pb.NewCodecClient(cc),
		compressor: pb.NewCompressorClient(cc),
		registry:   pb.NewRegistryClient(cc),
		balancer:   pb.NewBalancerClient(cc),
		filter:     pb.NewFilterClient(cc),
	}, nil
}

func pluginSet(srv *server) map[int]goplugin.PluginSet {
	return map[int]goplugin.PluginSet{
		ProtocolVersion: {pluginName: &bridge{srv: srv}},
	}
}
