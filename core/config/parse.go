package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/kiterpc/kite/spi"
)

// componentKinds are the kinds that have a top-level block of their own,
// in the order they are decoded.
var componentKinds = []spi.Kind{spi.KindRegistry, spi.KindBalancer, spi.KindFilter, spi.KindCodec, spi.KindCompressor}

var fileSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "plugin", LabelNames: []string{"kind", "name"}},
	{Type: string(spi.KindRegistry), LabelNames: []string{"impl", "label"}},
	{Type: string(spi.KindBalancer), LabelNames: []string{"impl", "label"}},
	{Type: string(spi.KindFilter), LabelNames: []string{"impl", "label"}},
	{Type: string(spi.KindCodec), LabelNames: []string{"impl", "label"}},
	{Type: string(spi.KindCompressor), LabelNames: []string{"impl", "label"}},
	{Type: "server", LabelNames: []string{"name"}},
	{Type: "client", LabelNames: []string{"name"}},
	{Type: "admin"},
	{Type: "probes"},
	{Type: "log"},
}}

// Load reads and parses the kite.hcl at path against cat (spi.Default
// when nil). The returned error is an *Error: its message starts with
// "file:line:col: " and its Format method prints every diagnostic with
// the source line. Relative paths in the file resolve against the file's
// directory.
func Load(path string, cat *spi.Catalog) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	f, diags, files := parse(src, path, dir, cat)
	if err := DiagnosticsError(diags, files); err != nil {
		return nil, err
	}
	return f, nil
}

// Parse parses src as a kite.hcl named filename (used in diagnostics and,
// through its directory, to resolve relative paths) against cat
// (spi.Default when nil). On errors the *File is nil; format the
// diagnostics with FormatDiagnostics(w, diags, Sources(filename, src)).
// Warnings are returned in diags and also kept in File.Warnings.
func Parse(src []byte, filename string, cat *spi.Catalog) (*File, hcl.Diagnostics) {
	f, diags, _ := parse(src, filename, filepath.Dir(filename), cat)
	return f, diags
}

// Sources returns the files map FormatDiagnostics needs for a source
// parsed with Parse.
func Sources(filename string, src []byte) map[string]*hcl.File {
	return map[string]*hcl.File{filename: {Bytes: src}}
}

type pluginKey struct {
	kind spi.Kind
	name string
}

// parser holds the state of one Parse.
type parser struct {
	cat     *spi.Catalog
	ctx     *hcl.EvalContext
	dir     string
	diags   hcl.Diagnostics
	plugins map[pluginKey]*PluginDecl
	// labels holds every component label declared, including blocks that
	// failed to decode, so one bad block does not also fail every
	// reference to it.
	labels map[spi.Kind]map[string]hcl.Range
	file   *File
}

func (p *parser) errorf(r hcl.Range, summary, format string, args ...any) {
	p.diags = append(p.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  r.Ptr(),
	})
}

func (p *parser) warnf(r hcl.Range, summary, format string, args ...any) {
	p.diags = append(p.diags, &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  r.Ptr(),
	})
}

func (p *parser) block(attrs hcl.Attributes, prefix string, set attrSet, ranges map[string]hcl.Range) *block {
	return &block{ctx: p.ctx, attrs: attrs, prefix: prefix, set: set, ranges: ranges, diags: &p.diags}
}

func parse(src []byte, filename, dir string, cat *spi.Catalog) (*File, hcl.Diagnostics, map[string]*hcl.File) {
	if cat == nil {
		cat = spi.Default
	}
	hf, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	files := map[string]*hcl.File{filename: hf}
	if hf == nil {
		files[filename] = &hcl.File{Bytes: src}
	}
	if diags.HasErrors() {
		return nil, diags, files
	}
	p := &parser{
		cat:     cat,
		ctx:     evalContext(),
		dir:     dir,
		diags:   diags,
		plugins: map[pluginKey]*PluginDecl{},
		labels:  map[spi.Kind]map[string]hcl.Range{},
		file:    &File{Filename: filename, Dir: dir, Files: files},
	}
	p.decodeFile(hf.Body)
	sortDiags(p.diags)
	p.file.Warnings = warnings(p.diags)
	if p.diags.HasErrors() {
		return nil, p.diags, files
	}
	return p.file, p.diags, files
}

// sortDiags orders diagnostics by position, so a reader fixes the file
// top to bottom; checks that run after decoding (references, limits)
// would otherwise come out after later lines' errors.
func sortDiags(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}

func warnings(diags hcl.Diagnostics) hcl.Diagnostics {
	var w hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning {
			w = append(w, d)
		}
	}
	return w
}

func (p *parser) decodeFile(body hcl.Body) {
	c, diags := content(body, fileSchema, "admin", "probes", "log")
	p.diags = append(p.diags, diags...)
	f := p.file

	// Process-wide operations settings (ops.go); at most one block each.
	for _, blk := range c.Blocks.OfType("admin") {
		if f.Admin == nil {
			f.Admin = p.decodeAdmin(blk)
		}
	}
	for _, blk := range c.Blocks.OfType("probes") {
		if f.Probes == nil {
			f.Probes = p.decodeProbes(blk)
		}
	}
	for _, blk := range c.Blocks.OfType("log") {
		if f.Log == nil {
			f.Log = p.decodeLog(blk)
		}
	}

	// Plugins first: a component block may name an implementation that
	// only a plugin block provides.
	for _, blk := range c.Blocks.OfType("plugin") {
		d := p.decodePlugin(blk)
		if d == nil {
			continue
		}
		key := pluginKey{d.Kind, d.Name}
		if prev := p.plugins[key]; prev != nil {
			p.errorf(blk.DefRange, "Duplicate plugin block", "The %s plugin %q is already declared at %s.", d.Kind, d.Name, prev.DeclRange)
			continue
		}
		if _, ok := p.cat.Lookup(d.Kind, d.Name); ok {
			p.warnf(blk.DefRange, "Plugin shadows a compiled-in implementation",
				"The %s %q is compiled in; this block replaces it with the out-of-process plugin at %s.", d.Kind, d.Name, d.Path)
		}
		p.plugins[key] = d
		f.Plugins = append(f.Plugins, d)
	}

	for _, kind := range componentKinds {
		labels := map[string]hcl.Range{}
		p.labels[kind] = labels
		for _, blk := range c.Blocks.OfType(string(kind)) {
			label := blk.Labels[1]
			if prev, dup := labels[label]; dup {
				p.errorf(blk.LabelRanges[1], "Duplicate "+string(kind)+" label",
					"A %s labelled %q is already declared at %s; labels name blocks in references, so they must be unique per kind.", kind, label, prev)
				continue
			}
			labels[label] = blk.DefRange
			comp := p.decodeComponent(kind, blk)
			if comp == nil {
				continue
			}
			switch kind {
			case spi.KindRegistry:
				f.Registries = append(f.Registries, comp)
			case spi.KindBalancer:
				f.Balancers = append(f.Balancers, comp)
			case spi.KindFilter:
				f.Filters = append(f.Filters, comp)
			case spi.KindCodec:
				f.Codecs = append(f.Codecs, comp)
			case spi.KindCompressor:
				f.Compressors = append(f.Compressors, comp)
			}
		}
	}

	names := map[string]hcl.Range{}
	for _, blk := range c.Blocks.OfType("server") {
		if prev, dup := names[blk.Labels[0]]; dup {
			p.errorf(blk.LabelRanges[0], "Duplicate server block", "A server named %q is already declared at %s.", blk.Labels[0], prev)
			continue
		}
		names[blk.Labels[0]] = blk.DefRange
		if s := p.decodeServer(blk); s != nil {
			f.Servers = append(f.Servers, s)
		}
	}
	names = map[string]hcl.Range{}
	for _, blk := range c.Blocks.OfType("client") {
		if prev, dup := names[blk.Labels[0]]; dup {
			p.errorf(blk.LabelRanges[0], "Duplicate client block", "A client named %q is already declared at %s.", blk.Labels[0], prev)
			continue
		}
		names[blk.Labels[0]] = blk.DefRange
		if cl := p.decodeClient(blk); cl != nil {
			f.Clients = append(f.Clients, cl)
		}
	}
}
