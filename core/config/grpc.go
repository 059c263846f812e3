package config

import (
	"net"

	"github.com/hashicorp/hcl/v2"
)

// ServerGRPC is a server's grpc block: the server answers gRPC (HTTP/2)
// on its listen address besides Kite's protocol, and on Listen too when
// set. Health (grpc.health.v1) and reflection (grpc.reflection.v1) are
// served unless turned off.
type ServerGRPC struct {
	Listen     string // extra address serving gRPC (and Kite); "" = none
	MaxMessage int64  // largest incoming message; 0 = the server's max_frame
	Health     bool
	Reflection bool
}

// ClientGRPC is a client's grpc block: the client calls plain gRPC
// servers through the "grpc" transport; Kite method "Svc.M" is called as
// "/<package>.Svc/M". The client's tls block, when present, secures
// those calls (gRPC over TLS, ALPN h2).
type ClientGRPC struct {
	Package    string
	Packages   map[string]string // per Kite service name
	MaxMessage int64             // largest response message; 0 = 4 MiB
}

var serverGRPCSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "listen"}, {Name: "max_message"}, {Name: "health"}, {Name: "reflection"},
}}

var clientGRPCSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "package"}, {Name: "packages"}, {Name: "max_message"},
}}

func (p *parser) decodeServerGRPC(blk *hcl.Block, set attrSet, ranges map[string]hcl.Range) *ServerGRPC {
	c, d := content(blk.Body, serverGRPCSchema)
	p.diags = append(p.diags, d...)
	gb := p.block(c.Attributes, "grpc.", set, ranges)
	g := &ServerGRPC{Health: true, Reflection: true}
	if gb.nonEmpty("listen", &g.Listen) {
		if _, _, err := net.SplitHostPort(g.Listen); err != nil {
			gb.errorf(gb.rng("listen"), "Invalid address", "%q is not a host:port address (%v); e.g. \"127.0.0.1:9090\".", g.Listen, err)
		}
	}
	if gb.size("max_message", &g.MaxMessage) && (g.MaxMessage < 1 || g.MaxMessage > maxFrameLimit) {
		gb.errorf(gb.rng("max_message"), "Value out of range", `"max_message" must be between 1 byte and 2GiB.`)
	}
	gb.boolean("health", &g.Health)
	gb.boolean("reflection", &g.Reflection)
	return g
}

func (p *parser) decodeClientGRPC(blk *hcl.Block, set attrSet, ranges map[string]hcl.Range) *ClientGRPC {
	c, d := content(blk.Body, clientGRPCSchema)
	p.diags = append(p.diags, d...)
	gb := p.block(c.Attributes, "grpc.", set, ranges)
	g := &ClientGRPC{}
	gb.str("package", &g.Package)
	gb.strMap("packages", &g.Packages)
	if gb.size("max_message", &g.MaxMessage) && (g.MaxMessage < 1 || g.MaxMessage > maxFrameLimit) {
		gb.errorf(gb.rng("max_message"), "Value out of range", `"max_message" must be between 1 byte and 2GiB.`)
	}
	return g
}

// checkClientGRPC: a grpc block implies the grpc transport. With a tls
// block too, that transport speaks gRPC over TLS (ALPN h2) with the tls
// block's ca, cert, key, server_name and min_version; without one,
// plaintext HTTP/2 (h2c).
func (p *parser) checkClientGRPC(cl *ClientConfig, set attrSet, def hcl.Range) {
	if cl.GRPC == nil {
		return
	}
	if set.has("transport") && cl.Transport != "grpc" {
		hint := ""
		if cl.Transport == "tls" {
			hint = " A tls block next to the grpc block is what makes gRPC calls use TLS."
		}
		p.errorf(p.at(cl.Ranges, def, "transport"), "gRPC needs the grpc transport",
			"This client has a grpc block but transport = %q. Remove the transport attribute (a grpc block implies \"grpc\") or set it to \"grpc\".%s", cl.Transport, hint)
	}
	cl.Transport = "grpc"
}
