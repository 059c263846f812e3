package config

import (
	"net"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/kiterpc/kite/core/defaults"
)

// DefaultAdminListen is where an `admin {}` block without listen binds:
// loopback, so metrics, pprof and the status page are not exposed by
// accident.
const DefaultAdminListen = defaults.AdminListen

// DefaultProbesListen is where a `probes {}` block without listen binds:
// every interface, since a kubelet probes the pod IP.
const DefaultProbesListen = defaults.ProbesListen

// Log defaults.
const (
	DefaultLogLevel  = "info"
	DefaultLogFormat = "text"
)

var adminSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "listen"}, {Name: "pprof"},
}}

var probesSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "listen"},
}}

var logSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "level"}, {Name: "format"},
}}

// Admin is the top-level `admin` block: the process's operations HTTP
// listener (/metrics, /healthz, /debug/pprof, status page). It is one per
// process, not per server, because what it shows is per process: the
// Prometheus registry, the Go runtime's profiles, and every server,
// client, plugin and registry of the stack.
type Admin struct {
	// Listen is "host:port"; port 0 picks one.
	Listen string
	// Pprof serves /debug/pprof/ when true (default false).
	Pprof bool
	// Loopback reports whether Listen's host is a loopback address (or
	// "localhost"); the parser warns when it is not.
	Loopback bool

	DeclRange hcl.Range
	Ranges    map[string]hcl.Range
}

// Probes is the top-level `probes` block: the Kubernetes probe listener
// (/healthz liveness, /readyz readiness and nothing else), kept apart
// from the admin listener so that it can bind the pod IP without
// exposing the status page, /metrics or pprof.
type Probes struct {
	// Listen is "host:port"; port 0 picks one.
	Listen string

	DeclRange hcl.Range
	Ranges    map[string]hcl.Range
}

// Log is the top-level `log` block: the level and format of the logger the
// stack hands to its servers, clients and plugins.
type Log struct {
	// Level is one of trace, debug, info, warn, error, off.
	Level string
	// Format is "text" or "json".
	Format string

	DeclRange hcl.Range
	Ranges    map[string]hcl.Range
}

// HCLogLevel is Level as an hclog.Level.
func (l *Log) HCLogLevel() hclog.Level {
	if l.Level == "" {
		return hclog.LevelFromString(DefaultLogLevel)
	}
	return hclog.LevelFromString(l.Level)
}

// JSON reports whether Format is "json".
func (l *Log) JSON() bool { return l.Format == "json" }

var logLevels = []string{"trace", "debug", "info", "warn", "error", "off"}

func (p *parser) decodeAdmin(blk *hcl.Block) *Admin {
	a := &Admin{Listen: DefaultAdminListen, Pprof: defaults.AdminPprof, DeclRange: blk.DefRange, Ranges: map[string]hcl.Range{}}
	c, d := content(blk.Body, adminSchema)
	p.diags = append(p.diags, d...)
	b := p.block(c.Attributes, "", attrSet{}, a.Ranges)
	if b.nonEmpty("listen", &a.Listen) {
		if _, _, err := net.SplitHostPort(a.Listen); err != nil {
			b.errorf(b.rng("listen"), "Invalid address", "%q is not a host:port address (%v); e.g. \"127.0.0.1:9100\".", a.Listen, err)
		}
	}
	b.boolean("pprof", &a.Pprof)
	a.Loopback = isLoopback(a.Listen)
	if !a.Loopback {
		p.warnf(p.at(a.Ranges, blk.DefRange, "listen"), "Admin listener not on loopback",
			"admin listen = %q exposes /metrics, /debug/pprof and the status page (plugin paths, registry contents) beyond this machine. Bind it to 127.0.0.1 and put an authenticating proxy in front if it must be reached remotely; for Kubernetes probes use a probes block, which serves /healthz and /readyz only.", a.Listen)
	}
	return a
}

func (p *parser) decodeProbes(blk *hcl.Block) *Probes {
	pr := &Probes{Listen: DefaultProbesListen, DeclRange: blk.DefRange, Ranges: map[string]hcl.Range{}}
	c, d := content(blk.Body, probesSchema)
	p.diags = append(p.diags, d...)
	b := p.block(c.Attributes, "", attrSet{}, pr.Ranges)
	if b.nonEmpty("listen", &pr.Listen) {
		if _, _, err := net.SplitHostPort(pr.Listen); err != nil {
			b.errorf(b.rng("listen"), "Invalid address", "%q is not a host:port address (%v); e.g. \":9101\" (every interface, as a kubelet probes the pod IP).", pr.Listen, err)
		}
	}
	return pr
}

// isLoopback reports whether addr's host is a loopback IP or "localhost".
// An empty host ("":9100) binds every interface, so it is not loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (p *parser) decodeLog(blk *hcl.Block) *Log {
	l := &Log{Level: DefaultLogLevel, Format: DefaultLogFormat, DeclRange: blk.DefRange, Ranges: map[string]hcl.Range{}}
	c, d := content(blk.Body, logSchema)
	p.diags = append(p.diags, d...)
	b := p.block(c.Attributes, "", attrSet{}, l.Ranges)
	if b.nonEmpty("level", &l.Level) {
		l.Level = strings.ToLower(l.Level)
		if !contains(logLevels, l.Level) {
			b.errorf(b.rng("level"), "Unknown log level", "%q is not a log level; valid levels: %s.", l.Level, strings.Join(logLevels, ", "))
		}
	}
	if b.nonEmpty("format", &l.Format) && l.Format != "text" && l.Format != "json" {
		b.errorf(b.rng("format"), "Unknown log format", "%q is not a log format; valid formats: \"text\", \"json\".", l.Format)
	}
	return l
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
