package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiterpc/kite/spi"
)

var clientSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "service"},
		{Name: "target"},
		{Name: "registry"},
		{Name: "balancer"},
		{Name: "codec"},
		{Name: "transport"},
		{Name: "timeout"},
		{Name: "connect_timeout"},
		{Name: "filters"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "retry"}, {Type: "pool"}, {Type: "heartbeat"}, {Type: "breaker"}, {Type: "compression"}, {Type: "tls"}, {Type: "grpc"},
		{Type: "method", LabelNames: []string{"name"}},
	},
}

var retrySchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "max_attempts"}, {Name: "backoff"}, {Name: "budget"}, {Name: "codes"},
}}

var poolSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "conns_per_endpoint"}, {Name: "idle_timeout"},
}}

var heartbeatSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "interval"}, {Name: "timeout"},
}}

var breakerSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "enabled"}, {Name: "consecutive_failures"}, {Name: "failure_ratio"}, {Name: "window"},
	{Name: "min_requests"}, {Name: "base_ejection"}, {Name: "max_ejection"},
	{Name: "max_ejection_percent"}, {Name: "half_open_probes"},
}}

var clientTLSSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "ca"}, {Name: "cert"}, {Name: "key"}, {Name: "server_name"}, {Name: "insecure_skip_verify"}, {Name: "min_version"},
}}

var methodSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "timeout"}, {Name: "idempotent"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "retry"}},
}

func (p *parser) decodeClient(blk *hcl.Block) *ClientConfig {
	cl := &ClientConfig{Name: blk.Labels[0], DeclRange: blk.DefRange, Ranges: map[string]hcl.Range{}}
	if !validName(cl.Name) {
		p.errorf(blk.LabelRanges[0], "Invalid client name", "%q is not a valid name: use letters, digits, '-', '_' and '.'.", cl.Name)
	}
	c, diags := content(blk.Body, clientSchema, "retry", "pool", "heartbeat", "breaker", "compression", "tls", "grpc")
	p.diags = append(p.diags, diags...)
	set := attrSet{}
	b := p.block(c.Attributes, "", set, cl.Ranges)

	b.nonEmpty("service", &cl.Service)
	targetRanges, _ := b.strList("target", &cl.Target, true)
	for i, t := range cl.Target {
		if strings.TrimSpace(t) == "" {
			b.errorf(targetRanges[i], "Empty target", "A target must be an address such as \"127.0.0.1:9000\".")
		}
	}
	if len(cl.Target) == 0 && set.has("target") {
		b.errorf(b.rng("target"), "Empty target", "target must list at least one address; remove it to use a registry instead.")
	}
	if b.nonEmpty("registry", &cl.Registry) && len(cl.Target) > 0 {
		b.errorf(b.rng("registry"), "Conflicting target and registry",
			"A client uses either fixed target addresses or a registry, not both; remove one of them.")
	}
	b.nonEmpty("balancer", &cl.Balancer)
	b.nonEmpty("codec", &cl.Codec)
	b.nonEmpty("transport", &cl.Transport)
	b.callTimeout("timeout", &cl.Timeout)
	b.duration("connect_timeout", &cl.ConnectTimeout)
	filterRanges, _ := b.strList("filters", &cl.Filters, false)

	methods := map[string]hcl.Range{}
	for _, sub := range c.Blocks {
		switch sub.Type {
		case "retry":
			p.decodeRetry(sub, "retry.", set, cl.Ranges, &cl.Retry)
		case "pool":
			pc, d := content(sub.Body, poolSchema)
			p.diags = append(p.diags, d...)
			pb := p.block(pc.Attributes, "pool.", set, cl.Ranges)
			pb.integer("conns_per_endpoint", &cl.Pool.ConnsPerEndpoint, 1, 1024)
			pb.duration("idle_timeout", &cl.Pool.IdleTimeout)
		case "heartbeat":
			hc, d := content(sub.Body, heartbeatSchema)
			p.diags = append(p.diags, d...)
			hb := p.block(hc.Attributes, "heartbeat.", set, cl.Ranges)
			hb.duration("interval", &cl.Heartbeat.Interval)
			hb.duration("timeout", &cl.Heartbeat.Timeout)
		case "breaker":
			p.decodeBreaker(sub, set, cl.Ranges, &cl.Breaker)
		case "compression":
			cl.Compression = p.decodeCompression(sub, set, cl.Ranges)
		case "tls":
			cl.TLS = p.decodeClientTLS(sub, set, cl.Ranges)
		case "grpc":
			cl.GRPC = p.decodeClientGRPC(sub, set, cl.Ranges)
		case "method":
			name := sub.Labels[0]
			if prev, dup := methods[name]; dup {
				p.errorf(sub.LabelRanges[0], "Duplicate method block", "Method %q is already configured at %s.", name, prev)
				continue
			}
			methods[name] = sub.DefRange
			if m := p.decodeMethod(sub, set, cl.Ranges); m != nil {
				cl.Methods = append(cl.Methods, m)
			}
		}
	}

	cl.applyDefaults(set)
	p.checkClientGRPC(cl, set, blk.DefRange)

	if cl.Heartbeat.Interval > 0 && cl.Heartbeat.Timeout <= 0 {
		p.errorf(p.at(cl.Ranges, blk.DefRange, "heartbeat.timeout"), "Invalid heartbeat",
			"heartbeat timeout must be positive while heartbeats are on; set interval = \"0s\" to turn them off.")
	}
	p.checkBreaker(&cl.Breaker, set, cl.Ranges)
	// The grpc transport takes the tls block too: gRPC over TLS (grpc.go).
	if cl.TLS != nil && cl.Transport != "tls" && cl.Transport != "grpc" {
		p.errorf(p.at(cl.Ranges, blk.DefRange, "transport"), "TLS needs the tls transport",
			"This client has a tls block but transport = %q. Remove the transport attribute (a tls block implies \"tls\") or set it to \"tls\".", cl.Transport)
	}
	p.checkTransport(cl.Transport, p.at(cl.Ranges, blk.DefRange, "transport"), set.has("transport"))
	if len(cl.Target) == 0 {
		if cl.Registry == NoRegistry {
			p.errorf(p.at(cl.Ranges, blk.DefRange, "registry"), "Client without endpoints",
				"registry = %q leaves this client nothing to call; name a registry or set target = [\"host:port\", …].", NoRegistry)
		} else {
			p.checkRef(spi.KindRegistry, cl.Registry, p.at(cl.Ranges, blk.DefRange, "registry"), set.has("registry"))
		}
	}
	p.checkRef(spi.KindBalancer, cl.Balancer, p.at(cl.Ranges, blk.DefRange, "balancer"), set.has("balancer"))
	p.checkRef(spi.KindCodec, cl.Codec, p.at(cl.Ranges, blk.DefRange, "codec"), set.has("codec"))
	for i, f := range cl.Filters {
		p.checkRef(spi.KindFilter, f, filterRanges[i], true)
	}
	if cl.Compression != nil {
		p.checkRef(spi.KindCompressor, cl.Compression.Name, p.at(cl.Ranges, blk.DefRange, "compression.name"), true)
	}
	return cl
}

// decodeRetry decodes a retry block into r, recording attributes under prefix.
func (p *parser) decodeRetry(blk *hcl.Block, prefix string, set attrSet, ranges map[string]hcl.Range, r *Retry) {
	c, d := content(blk.Body, retrySchema)
	p.diags = append(p.diags, d...)
	rb := p.block(c.Attributes, prefix, set, ranges)
	rb.integer("max_attempts", &r.MaxAttempts, 1, 100)
	var backoff string
	if rb.str("backoff", &backoff) {
		lo, hi, err := parseBackoff(backoff)
		if err != nil {
			rb.errorf(rb.rng("backoff"), "Invalid backoff", "%v.", err)
			delete(set, prefix+"backoff")
		}
		r.BackoffMin, r.BackoffMax = lo, hi
	}
	rb.float("budget", &r.Budget, 0, 1)
	var codes []string
	if rs, ok := rb.strList("codes", &codes, false); ok {
		r.Codes = r.Codes[:0]
		for i, name := range codes {
			code, ok := spi.ParseCode(name)
			if !ok || code == spi.OK {
				rb.errorf(rs[i], "Unknown status code", "%q is not a retryable status code. %s", name, didYouMean(name, retryableCodes()))
				continue
			}
			r.Codes = append(r.Codes, code)
		}
	}
}

func retryableCodes() []string {
	var out []string
	for c := spi.Canceled; c <= spi.Unauthenticated; c++ {
		out = append(out, c.String())
	}
	return out
}

// parseBackoff parses "10ms..1s" (exponential from the first to the
// second) or "100ms" (constant).
func parseBackoff(s string) (lo, hi time.Duration, err error) {
	a, b, ranged := strings.Cut(s, "..")
	lo, err = parseDuration(a)
	if err != nil {
		return 0, 0, fmt.Errorf(`backoff %q: %v (write "MIN..MAX" like "10ms..1s", or one duration)`, s, err)
	}
	hi = lo
	if ranged {
		if hi, err = parseDuration(b); err != nil {
			return 0, 0, fmt.Errorf(`backoff %q: %v (write "MIN..MAX" like "10ms..1s", or one duration)`, s, err)
		}
		if hi < lo {
			return 0, 0, fmt.Errorf("backoff %q: the maximum is below the minimum", s)
		}
	}
	return lo, hi, nil
}

// decodeBreaker decodes a client's breaker block into b. Checks that
// need the defaults (max_ejection against base_ejection) wait for
// checkBreaker.
func (p *parser) decodeBreaker(blk *hcl.Block, set attrSet, ranges map[string]hcl.Range, b *Breaker) {
	c, d := content(blk.Body, breakerSchema)
	p.diags = append(p.diags, d...)
	bb := p.block(c.Attributes, "breaker.", set, ranges)
	bb.boolean("enabled", &b.Enabled)
	// An explicit 0 turns one trigger off, as "0s" turns heartbeats off;
	// enabled = false turns both off.
	bb.integer("consecutive_failures", &b.ConsecutiveFailures, 0, 1_000_000)
	bb.float("failure_ratio", &b.FailureRatio, 0, 1)
	bb.positiveDuration("window", &b.Window)
	bb.integer("min_requests", &b.MinRequests, 1, 1_000_000_000)
	bb.positiveDuration("base_ejection", &b.BaseEjection)
	bb.positiveDuration("max_ejection", &b.MaxEjection)
	bb.integer("max_ejection_percent", &b.MaxEjectionPercent, 1, 100)
	bb.integer("half_open_probes", &b.HalfOpenProbes, 1, 1_000_000)
}

// checkBreaker checks the breaker settings once defaults are in: a
// max_ejection below base_ejection would make the doubling ejection
// shrink, so it is refused where the file set it.
func (p *parser) checkBreaker(b *Breaker, set attrSet, ranges map[string]hcl.Range) {
	// MaxEjection is 0 only when its value was refused already.
	if set.has("breaker.max_ejection") && b.MaxEjection > 0 && b.MaxEjection < b.BaseEjection {
		base := b.BaseEjection.String()
		if !set.has("breaker.base_ejection") {
			base += ", the default"
		}
		p.errorf(ranges["breaker.max_ejection"], "Invalid breaker ejection",
			"max_ejection (%s) is below base_ejection (%s): each ejection doubles from base_ejection up to max_ejection. Raise max_ejection or lower base_ejection.",
			b.MaxEjection, base)
	}
	if !b.Enabled {
		for _, a := range breakerSchema.Attributes {
			if a.Name != "enabled" && set.has("breaker."+a.Name) {
				p.warnf(ranges["breaker."+a.Name], "Breaker setting unused",
					"enabled = false turns the circuit breaker off, so %s has no effect.", a.Name)
				break
			}
		}
	}
}

func (p *parser) decodeClientTLS(blk *hcl.Block, set attrSet, ranges map[string]hcl.Range) *ClientTLS {
	c, d := content(blk.Body, clientTLSSchema)
	p.diags = append(p.diags, d...)
	tb := p.block(c.Attributes, "tls.", set, ranges)
	t := &ClientTLS{}
	if tb.str("ca", &t.CA) {
		t.CA = p.path(t.CA)
	}
	if tb.str("cert", &t.Cert) {
		t.Cert = p.path(t.Cert)
	}
	if tb.str("key", &t.Key) {
		t.Key = p.path(t.Key)
	}
	if (t.Cert == "") != (t.Key == "") {
		r := tb.rng("cert")
		if t.Cert == "" {
			r = tb.rng("key")
		}
		tb.errorf(r, "Incomplete client certificate", "A client certificate needs both cert and key.")
	}
	tb.str("server_name", &t.ServerName)
	if tb.boolean("insecure_skip_verify", &t.InsecureSkipVerify) && t.InsecureSkipVerify {
		p.warnf(tb.rng("insecure_skip_verify"), "Server certificate not verified",
			"insecure_skip_verify = true accepts any server certificate: anyone on the path can read and change calls. Use it for local testing only.")
	}
	t.MinVersion = decodeTLSVersion(tb)
	return t
}

func (p *parser) decodeMethod(blk *hcl.Block, set attrSet, ranges map[string]hcl.Range) *MethodConfig {
	name := blk.Labels[0]
	svc, meth, ok := strings.Cut(name, ".")
	if !ok || svc == "" || meth == "" || strings.ContainsAny(name, " \t\n") {
		p.errorf(blk.LabelRanges[0], "Invalid method name", "%q is not a method name: write \"Service.Method\", as calls name it.", name)
		return nil
	}
	c, d := content(blk.Body, methodSchema, "retry")
	p.diags = append(p.diags, d...)
	m := &MethodConfig{Name: name, DeclRange: blk.DefRange}
	prefix := "method." + name + "."
	mb := p.block(c.Attributes, prefix, set, ranges)
	mb.callTimeout("timeout", &m.Timeout)
	mb.boolean("idempotent", &m.Idempotent)
	for _, sub := range c.Blocks {
		p.decodeRetry(sub, prefix+"retry.", set, ranges, &m.Retry)
	}
	return m
}
