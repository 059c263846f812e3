package config

import (
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/kiterpc/kite/spi"
)

var pluginSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "path"},
	{Name: "command"},
	{Name: "sha256", Required: true},
	{Name: "files"},
	{Name: "args"},
	{Name: "env"},
	{Name: "start_timeout"},
}}

// decodePlugin decodes a `plugin "<kind>" "<name>"` block.
func (p *parser) decodePlugin(blk *hcl.Block) *PluginDecl {
	kind, name := spi.Kind(blk.Labels[0]), blk.Labels[1]
	d := &PluginDecl{Kind: kind, Name: name, DeclRange: blk.DefRange}
	ok := true
	switch {
	case kind == spi.KindTransport:
		p.errorf(blk.LabelRanges[0], "Transport cannot be a plugin",
			"Transports stay compiled in: they carry every byte of every call, so an out-of-process transport would cost a plugin round trip per read and write.")
		ok = false
	case !isKind(kind):
		var kinds []string
		for _, k := range spi.Kinds {
			if k != spi.KindTransport {
				kinds = append(kinds, string(k))
			}
		}
		p.errorf(blk.LabelRanges[0], "Unknown plugin kind", "%q is not a plugin kind. %s", kind, didYouMean(string(kind), kinds))
		ok = false
	}
	if !validName(name) {
		p.errorf(blk.LabelRanges[1], "Invalid plugin name", "%q is not a valid name: use letters, digits, '-', '_' and '.'.", name)
		ok = false
	}
	c, diags := content(blk.Body, pluginSchema)
	p.diags = append(p.diags, diags...)
	d.Ranges = map[string]hcl.Range{}
	b := p.block(c.Attributes, "", attrSet{}, d.Ranges)
	_, hasPath := c.Attributes["path"]
	_, hasCommand := c.Attributes["command"]
	switch {
	case hasPath && hasCommand:
		b.errorf(b.rng("command"), "Both path and command",
			"A plugin block gives either path (an executable, with args) or command (an interpreter and its arguments, e.g. [\"/usr/bin/python3\", \"plugin.py\"]), not both.")
		ok = false
	case !hasPath && !hasCommand:
		p.errorf(blk.DefRange, "Missing plugin executable",
			"A plugin block needs path (an executable) or command (an interpreter and its arguments, e.g. [\"/usr/bin/python3\", \"plugin.py\"]).")
		ok = false
	}
	if b.nonEmpty("path", &d.Path) {
		d.Path = filepath.Clean(d.Path)
		if !filepath.IsAbs(d.Path) {
			d.Path = filepath.Join(p.dir, d.Path)
		}
	}
	if b.strMap("files", &d.Files) {
		// Keys are paths relative to this file; the sums are checked
		// before every start, like the executable's.
		files := make(map[string]string, len(d.Files))
		for f, sum := range d.Files {
			sum = strings.ToLower(strings.TrimSpace(sum))
			if raw, err := hex.DecodeString(sum); err != nil || len(raw) != 32 {
				b.errorf(b.rng("files"), "Invalid sha256", "The sha256 of %q must be 64 hexadecimal characters (the output of `sha256sum %s`); got %d characters.", f, f, len(sum))
			}
			files[p.resolve(f)] = sum
		}
		d.Files = files
	}
	if hasCommand {
		var cmd []string
		if _, set := b.strList("command", &cmd, false); set {
			if len(cmd) == 0 || strings.TrimSpace(cmd[0]) == "" {
				b.errorf(b.rng("command"), "Empty command", "command needs at least the executable, e.g. [\"/usr/bin/python3\", \"plugin.py\"].")
				ok = false
			} else {
				// The executable: a bare name is looked up on PATH when
				// the plugin starts; a path is relative to this file.
				d.Path = cmd[0]
				if strings.ContainsRune(d.Path, '/') || strings.ContainsRune(d.Path, filepath.Separator) {
					d.Path = p.resolve(d.Path)
				}
				// An argument that names a file of `files` runs that
				// very file, resolved like it; the rest pass verbatim.
				for _, a := range cmd[1:] {
					if r := p.resolve(a); d.Files[r] != "" {
						a = r
					}
					d.Args = append(d.Args, a)
				}
			}
			if _, both := c.Attributes["args"]; both {
				b.errorf(b.rng("args"), "Both command and args", "With command, put the arguments in command itself.")
				ok = false
			}
		}
	}
	if b.str("sha256", &d.SHA256) {
		sum := strings.ToLower(strings.TrimSpace(d.SHA256))
		if raw, err := hex.DecodeString(sum); err != nil || len(raw) != 32 {
			b.errorf(b.rng("sha256"), "Invalid sha256", "sha256 must be 64 hexadecimal characters (the output of `sha256sum %s`); got %d characters.", filepath.Base(d.Path), len(d.SHA256))
		}
		d.SHA256 = sum
	}
	var args []string
	b.strList("args", &args, false)
	if !hasCommand {
		d.Args = args
	}
	b.strMap("env", &d.Env)
	b.positiveDuration("start_timeout", &d.StartTimeout)
	if !ok {
		return nil
	}
	return d
}

// resolve makes a path from kite.hcl absolute, relative to the file.
func (p *parser) resolve(f string) string {
	f = filepath.Clean(f)
	if !filepath.IsAbs(f) {
		f = filepath.Join(p.dir, f)
	}
	return f
}

func isKind(k spi.Kind) bool {
	for _, x := range spi.Kinds {
		if x == k {
			return true
		}
	}
	return false
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// SchemaSpec converts a plugin's Schema into the hcldec spec its block is
// decoded with. Durations decode as strings (checked separately, so the
// plugin receives "500ms" as the SPI promises). Fields of an unknown type
// accept any value.
func SchemaSpec(s spi.Schema) hcldec.ObjectSpec {
	spec := make(hcldec.ObjectSpec, len(s))
	for _, f := range s {
		spec[f.Name] = &hcldec.AttrSpec{Name: f.Name, Type: ctyType(f.Type), Required: f.Required}
	}
	return spec
}

func ctyType(t spi.FieldType) cty.Type {
	switch t {
	case spi.TypeString, spi.TypeDuration:
		return cty.String
	case spi.TypeNumber:
		return cty.Number
	case spi.TypeBool:
		return cty.Bool
	case spi.TypeStringList:
		return cty.List(cty.String)
	case spi.TypeStringMap:
		return cty.Map(cty.String)
	}
	return cty.DynamicPseudoType
}

// checkSchema refuses a schema hcldec cannot take (a programming error in
// the plugin, reported as a diagnostic rather than a panic).
func checkSchema(s spi.Schema) error {
	seen := map[string]bool{}
	for _, f := range s {
		if !hclsyntax.ValidIdentifier(f.Name) {
			return fmt.Errorf("field %q is not a valid attribute name", f.Name)
		}
		if seen[f.Name] {
			return fmt.Errorf("field %q is declared twice", f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}

// decodeComponent decodes `<kind> "<impl>" "<label>" { … }`.
func (p *parser) decodeComponent(kind spi.Kind, blk *hcl.Block) *Component {
	impl, label := blk.Labels[0], blk.Labels[1]
	c := &Component{Kind: kind, Impl: impl, Label: label, DeclRange: blk.DefRange, AttrRanges: map[string]hcl.Range{}}
	if !validName(label) {
		p.errorf(blk.LabelRanges[1], "Invalid label", "%q is not a valid label: use letters, digits, '-', '_' and '.'.", label)
		return nil
	}
	if pl := p.plugins[pluginKey{kind, impl}]; pl != nil {
		c.Plugin = pl
		c.Config = p.genericBody(blk.Body, c.AttrRanges)
		return c
	}
	entry, ok := p.cat.Lookup(kind, impl)
	if !ok {
		p.errorf(blk.LabelRanges[0], "Unknown "+string(kind)+" implementation",
			"No %s named %q is compiled in or declared by a plugin block. %s", kind, impl, didYouMean(impl, p.cat.Names(kind)))
		return nil
	}
	if err := checkSchema(entry.Schema); err != nil {
		p.errorf(blk.LabelRanges[0], "Invalid plugin schema", "The %s %q publishes a schema kite cannot use: %v.", kind, impl, err)
		return nil
	}
	c.Config = p.schemaBody(blk.Body, entry.Schema, c.AttrRanges)
	return c
}

// schemaBody decodes body against schema into a JSON object holding only
// the attributes present.
func (p *parser) schemaBody(body hcl.Body, schema spi.Schema, ranges map[string]hcl.Range) spi.Config {
	spec := SchemaSpec(schema)
	hs := hcldec.ImpliedSchema(spec)
	// Content reports unknown and missing attributes (with the valid names
	// listed); PartialDecode then converts the attributes that are there,
	// so type and duration errors show in the same run.
	_, diags := body.Content(hs)
	listValid(diags, hs)
	p.diags = append(p.diags, diags...)
	failed := diags.HasErrors()
	val, _, decDiags := hcldec.PartialDecode(body, spec, p.ctx)
	for _, d := range decDiags {
		if d.Summary != "Missing required argument" {
			p.diags = append(p.diags, d)
			failed = failed || d.Severity == hcl.DiagError
		}
	}
	if val.IsNull() || !val.IsWhollyKnown() {
		return nil
	}
	kept := map[string]cty.Value{}
	for _, f := range schema {
		v := val.GetAttr(f.Name)
		if v.IsNull() {
			continue
		}
		r := hcldec.SourceRange(body, spec[f.Name])
		ranges[f.Name] = r
		if f.Type == spi.TypeDuration {
			if _, err := parseDuration(v.AsString()); err != nil {
				p.errorf(r, "Invalid duration", "%q: %v.", f.Name, err)
				failed = true
			}
		}
		kept[f.Name] = v
	}
	if failed {
		return nil
	}
	return marshalObject(kept)
}

// genericBody converts a body whose schema is unknown (a plugin declared
// in the file) into a JSON object attribute by attribute; the plugin host
// checks it against the schema the plugin reports when it starts.
func (p *parser) genericBody(body hcl.Body, ranges map[string]hcl.Range) spi.Config {
	attrs, diags := body.JustAttributes()
	p.diags = append(p.diags, diags...)
	kept := map[string]cty.Value{}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	failed := false
	for _, n := range names {
		a := attrs[n]
		v, d := a.Expr.Value(p.ctx)
		p.diags = append(p.diags, d...)
		if d.HasErrors() {
			failed = true
			continue
		}
		if !v.IsWhollyKnown() {
			p.errorf(a.Expr.Range(), "Unknown value", "The value of %q cannot be known when the file is read.", n)
			failed = true
			continue
		}
		ranges[n] = a.Expr.Range()
		if !v.IsNull() {
			kept[n] = v
		}
	}
	if failed || diags.HasErrors() {
		return nil
	}
	return marshalObject(kept)
}

func marshalObject(m map[string]cty.Value) spi.Config {
	if len(m) == 0 {
		return spi.Config("{}")
	}
	obj := cty.ObjectVal(m)
	js, err := ctyjson.Marshal(obj, obj.Type())
	if err != nil {
		// Only values that cannot be known reach here, and those were refused.
		return spi.Config("{}")
	}
	return spi.Config(js)
}
