package config

import (
	"crypto/tls"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiterpc/kite/spi"
)

var serverSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "listen", Required: true},
		{Name: "advertise"},
		{Name: "transport"},
		{Name: "registry"},
		{Name: "codec"},
		{Name: "filters"},
		{Name: "service_name"},
		{Name: "weight"},
		{Name: "version"},
		{Name: "zone"},
		{Name: "tags"},
		{Name: "metadata"},
		{Name: "shutdown_timeout"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "limits"}, {Type: "compression"}, {Type: "tls"}, {Type: "grpc"}},
}

var limitsSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "max_concurrency"}, {Name: "max_conn_concurrency"}, {Name: "max_frame"}, {Name: "max_metadata"}, {Name: "max_conns"},
	{Name: "idle_timeout"}, {Name: "handshake_timeout"},
	{Name: "stream_idle_timeout"}, {Name: "body_memory"}, {Name: "max_peer_share"},
	{Name: "write_timeout"},
}}

var compressionSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "name", Required: true}, {Name: "threshold"},
}}

var serverTLSSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "cert", Required: true}, {Name: "key", Required: true}, {Name: "ca"}, {Name: "client_auth"}, {Name: "min_version"},
}}

// clientAuthModes maps client_auth values to crypto/tls's modes.
var clientAuthModes = map[string]tls.ClientAuthType{
	"none":               tls.NoClientCert,
	"request":            tls.RequestClientCert,
	"require":            tls.RequireAnyClientCert,
	"verify_if_given":    tls.VerifyClientCertIfGiven,
	"require_and_verify": tls.RequireAndVerifyClientCert,
}

// maxFrameLimit keeps frame lengths within the protocol's 32-bit length field.
const maxFrameLimit = 1<<31 - 1

func (p *parser) decodeServer(blk *hcl.Block) *ServerConfig {
	s := &ServerConfig{Name: blk.Labels[0], DeclRange: blk.DefRange, Ranges: map[string]hcl.Range{}}
	if !validName(s.Name) {
		p.errorf(blk.LabelRanges[0], "Invalid server name", "%q is not a valid name: use letters, digits, '-', '_' and '.'.", s.Name)
	}
	c, diags := content(blk.Body, serverSchema, "limits", "compression", "tls", "grpc")
	p.diags = append(p.diags, diags...)
	set := attrSet{}
	b := p.block(c.Attributes, "", set, s.Ranges)

	b.nonEmpty("listen", &s.Listen)
	b.str("advertise", &s.Advertise)
	b.nonEmpty("transport", &s.Transport)
	b.nonEmpty("registry", &s.Registry)
	b.nonEmpty("codec", &s.Codec)
	filterRanges, _ := b.strList("filters", &s.Filters, false)
	b.nonEmpty("service_name", &s.ServiceName)
	b.integer("weight", &s.Weight, 0, 1_000_000)
	b.str("version", &s.Version)
	b.str("zone", &s.Zone)
	b.strList("tags", &s.Tags, false)
	b.strMap("metadata", &s.Metadata)
	b.duration("shutdown_timeout", &s.ShutdownTimeout)

	for _, sub := range c.Blocks {
		switch sub.Type {
		case "limits":
			lc, d := content(sub.Body, limitsSchema)
			p.diags = append(p.diags, d...)
			lb := p.block(lc.Attributes, "limits.", set, s.Ranges)
			lb.integer("max_concurrency", &s.Limits.MaxConcurrency, 0, 1<<31-1)
			lb.integer("max_conn_concurrency", &s.Limits.MaxConnConcurrency, 0, 1<<31-1)
			if lb.size("max_frame", &s.Limits.MaxFrame) && (s.Limits.MaxFrame < 1024 || s.Limits.MaxFrame > maxFrameLimit) {
				lb.errorf(lb.rng("max_frame"), "Value out of range", `"max_frame" must be between 1KiB and 2GiB-1 bytes (the frame length is 32 bits).`)
			}
			if lb.size("max_metadata", &s.Limits.MaxMetadata) && s.Limits.MaxMetadata < 1 {
				lb.errorf(lb.rng("max_metadata"), "Value out of range", `"max_metadata" must be at least 1 byte.`)
			}
			lb.integer("max_conns", &s.Limits.MaxConns, 0, 1<<31-1)
			lb.duration("idle_timeout", &s.Limits.IdleTimeout)
			// No "never": a client that connects and stays silent must
			// not hold a socket and a goroutine for good.
			lb.positiveDuration("handshake_timeout", &s.Limits.HandshakeTimeout)
			lb.duration("stream_idle_timeout", &s.Limits.StreamIdleTimeout)
			lb.duration("write_timeout", &s.Limits.WriteTimeout)
			if lb.size("body_memory", &s.Limits.BodyMemory) && s.Limits.BodyMemory < 1<<20 {
				lb.errorf(lb.rng("body_memory"), "Value out of range", `"body_memory" must be at least 1MiB: it bounds the request bodies of every call in progress together.`)
			}
			if lb.float("max_peer_share", &s.Limits.MaxPeerShare, 0, 1) && s.Limits.MaxPeerShare == 0 {
				lb.errorf(lb.rng("max_peer_share"), "Value out of range", `"max_peer_share" must be above 0 (a share of max_concurrency, up to 1 = no per-peer limit).`)
			}
		case "compression":
			s.Compression = p.decodeCompression(sub, set, s.Ranges)
		case "tls":
			s.TLS = p.decodeServerTLS(sub, set, s.Ranges)
		case "grpc":
			s.GRPC = p.decodeServerGRPC(sub, set, s.Ranges)
		}
	}

	s.applyDefaults(set)

	// Checks that need the effective values.
	if s.Limits.MaxMetadata > s.Limits.MaxFrame {
		p.errorf(p.at(s.Ranges, blk.DefRange, "limits.max_metadata", "limits.max_frame"), "Inconsistent limits",
			"max_metadata (%s) must not exceed max_frame (%s): metadata travels inside the frame.", FormatSize(s.Limits.MaxMetadata), FormatSize(s.Limits.MaxFrame))
	}
	if s.TLS != nil && s.Transport != "tls" {
		p.errorf(p.at(s.Ranges, blk.DefRange, "transport"), "TLS needs the tls transport",
			"This server has a tls block but transport = %q. Remove the transport attribute (a tls block implies \"tls\") or set it to \"tls\".", s.Transport)
	}
	p.checkTransport(s.Transport, p.at(s.Ranges, blk.DefRange, "transport"), set.has("transport"))
	if s.Registry != NoRegistry {
		p.checkRef(spi.KindRegistry, s.Registry, p.at(s.Ranges, blk.DefRange, "registry"), set.has("registry"))
	}
	p.checkRef(spi.KindCodec, s.Codec, p.at(s.Ranges, blk.DefRange, "codec"), set.has("codec"))
	for i, f := range s.Filters {
		p.checkRef(spi.KindFilter, f, filterRanges[i], true)
	}
	if s.Compression != nil {
		p.checkRef(spi.KindCompressor, s.Compression.Name, p.at(s.Ranges, blk.DefRange, "compression.name"), true)
	}
	return s
}

// at returns the range recorded for the first of paths, or def.
func (p *parser) at(ranges map[string]hcl.Range, def hcl.Range, paths ...string) hcl.Range {
	for _, path := range paths {
		if r, ok := ranges[path]; ok {
			return r
		}
	}
	return def
}

func (p *parser) decodeCompression(blk *hcl.Block, set attrSet, ranges map[string]hcl.Range) *Compression {
	c, d := content(blk.Body, compressionSchema)
	p.diags = append(p.diags, d...)
	cb := p.block(c.Attributes, "compression.", set, ranges)
	comp := &Compression{}
	cb.nonEmpty("name", &comp.Name)
	cb.size("threshold", &comp.Threshold)
	return comp
}

// path resolves a file path from the config against its directory.
func (p *parser) path(s string) string {
	if s == "" || filepath.IsAbs(s) {
		return s
	}
	return filepath.Join(p.dir, s)
}

func (p *parser) decodeServerTLS(blk *hcl.Block, set attrSet, ranges map[string]hcl.Range) *ServerTLS {
	c, d := content(blk.Body, serverTLSSchema)
	p.diags = append(p.diags, d...)
	tb := p.block(c.Attributes, "tls.", set, ranges)
	t := &ServerTLS{}
	if tb.nonEmpty("cert", &t.Cert) {
		t.Cert = p.path(t.Cert)
	}
	if tb.nonEmpty("key", &t.Key) {
		t.Key = p.path(t.Key)
	}
	if tb.str("ca", &t.CA) {
		t.CA = p.path(t.CA)
	}
	var mode string
	if tb.str("client_auth", &mode) {
		m, ok := clientAuthModes[strings.ToLower(mode)]
		if !ok {
			var names []string
			for n := range clientAuthModes {
				names = append(names, n)
			}
			tb.errorf(tb.rng("client_auth"), "Invalid client_auth", "%q is not a client_auth mode. %s", mode, didYouMean(mode, names))
		}
		t.ClientAuth = m
		if m >= tls.VerifyClientCertIfGiven && t.CA == "" {
			tb.errorf(tb.rng("client_auth"), "Missing ca", "client_auth = %q verifies client certificates, which needs ca = \"<CA bundle file>\".", mode)
		}
	}
	t.MinVersion = decodeTLSVersion(tb)
	return t
}

// tlsVersions are the min_version values: TLS below 1.2 is not offered.
var tlsVersions = []string{"1.2", "1.3"}

// decodeTLSVersion reads a tls block's min_version ("" when absent: the
// transport's default, 1.3).
func decodeTLSVersion(tb *block) string {
	var v string
	if tb.str("min_version", &v) && !slices.Contains(tlsVersions, v) {
		tb.errorf(tb.rng("min_version"), "Invalid min_version",
			"%q is not a TLS version Kite offers: use \"1.2\" or \"1.3\" (the default; 1.0 and 1.1 are broken). %s", v, didYouMean(v, tlsVersions))
	}
	return v
}

// checkTransport checks a transport name against the catalog; transports
// are compiled in only, so there is no block or plugin to consult.
func (p *parser) checkTransport(name string, r hcl.Range, explicit bool) {
	if _, ok := p.cat.Lookup(spi.KindTransport, name); ok {
		return
	}
	p.refError(spi.KindTransport, name, r, explicit, p.cat.Names(spi.KindTransport),
		"No transport named %q is compiled in.")
}

// checkRef checks a reference to a component: a block label of kind, an
// implementation declared by a plugin block, or a compiled-in
// implementation used with an empty configuration.
func (p *parser) checkRef(kind spi.Kind, ref string, r hcl.Range, explicit bool) {
	if ref == "" {
		return
	}
	var candidates []string
	for label := range p.labels[kind] {
		if label == ref {
			return
		}
		candidates = append(candidates, label)
	}
	if p.plugins[pluginKey{kind, ref}] != nil {
		return
	}
	if e, ok := p.cat.Lookup(kind, ref); ok {
		var required []string
		for _, f := range e.Schema {
			if f.Required {
				required = append(required, f.Name)
			}
		}
		if len(required) > 0 {
			p.errorf(r, "Implementation needs a configuration block",
				"The %s %q requires %s, so it must be declared in a block and referenced by label, like:\n  %s %q \"main\" { %s = … }",
				kind, ref, strings.Join(required, ", "), kind, ref, required[0])
		}
		return
	}
	for k := range p.plugins {
		if k.kind == kind {
			candidates = append(candidates, k.name)
		}
	}
	candidates = append(candidates, p.cat.Names(kind)...)
	sort.Strings(candidates)
	p.refError(kind, ref, r, explicit, dedupe(candidates),
		"No "+string(kind)+" block is labelled %q, and no "+string(kind)+" implementation has that name.")
}

func (p *parser) refError(kind spi.Kind, ref string, r hcl.Range, explicit bool, candidates []string, format string) {
	detail := sprintf(format, ref) + " " + didYouMean(ref, candidates)
	if !explicit {
		detail = sprintf("The default %s is %q, which is not available. Set %s = \"…\" in this block. ", kind, ref, kind) + didYouMean(ref, candidates)
	}
	p.errorf(r, "Unknown "+string(kind), "%s", detail)
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
