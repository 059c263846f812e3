package config

import (
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// block decodes the attributes of one block against its schema, keeping
// diagnostics, which attributes were set (for defaults) and where each
// one is (for errors found later). It is written out by hand rather than
// with gohcl so every check — durations, sizes, ranges, references — can
// report at the exact expression.
type block struct {
	ctx    *hcl.EvalContext
	attrs  hcl.Attributes
	prefix string // dotted path of this block inside its top-level block
	set    attrSet
	ranges map[string]hcl.Range
	diags  *hcl.Diagnostics
}

func (b *block) errorf(r hcl.Range, summary, format string, args ...any) {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...)}
	if r.Filename != "" {
		d.Subject = r.Ptr()
	}
	*b.diags = append(*b.diags, d)
}

// value evaluates name converted to ty. ok is false when the attribute is
// absent, null (null means "not set", as in Terraform) or erroneous.
func (b *block) value(name string, ty cty.Type) (cty.Value, *hcl.Attribute, bool) {
	a, present := b.attrs[name]
	if !present {
		return cty.NilVal, nil, false
	}
	v, d := a.Expr.Value(b.ctx)
	*b.diags = append(*b.diags, d...)
	if d.HasErrors() || v.IsNull() {
		return cty.NilVal, a, false
	}
	if !v.IsWhollyKnown() {
		b.errorf(a.Expr.Range(), "Unknown value", "The value of %q cannot be known when the file is read.", name)
		return cty.NilVal, a, false
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		b.errorf(a.Expr.Range(), "Incorrect attribute value type",
			"Inappropriate value for attribute %q: %s required, got %s.", name, ty.FriendlyNameForConstraint(), v.Type().FriendlyName())
		return cty.NilVal, a, false
	}
	b.set[b.prefix+name] = true
	b.ranges[b.prefix+name] = a.Expr.Range()
	return cv, a, true
}

// rng is the range of name's value, or the zero range (no position) when
// the attribute is absent.
func (b *block) rng(name string) hcl.Range {
	if a, ok := b.attrs[name]; ok {
		return a.Expr.Range()
	}
	return hcl.Range{}
}

func (b *block) str(name string, dst *string) bool {
	v, _, ok := b.value(name, cty.String)
	if ok {
		*dst = v.AsString()
	}
	return ok
}

// nonEmpty is str that refuses "".
func (b *block) nonEmpty(name string, dst *string) bool {
	var s string
	if !b.str(name, &s) {
		return false
	}
	if strings.TrimSpace(s) == "" {
		b.errorf(b.rng(name), "Empty value", "%q must not be empty.", name)
		delete(b.set, b.prefix+name)
		return false
	}
	*dst = s
	return true
}

func (b *block) boolean(name string, dst *bool) bool {
	v, _, ok := b.value(name, cty.Bool)
	if ok {
		*dst = v.True()
	}
	return ok
}

// integer reads a whole number in [lo, hi].
func (b *block) integer(name string, dst *int, lo, hi int64) bool {
	v, _, ok := b.value(name, cty.Number)
	if !ok {
		return false
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		b.errorf(b.rng(name), "Invalid number", "%q must be a whole number.", name)
		return false
	}
	if bf.Cmp(new(big.Float).SetInt64(lo)) < 0 || bf.Cmp(new(big.Float).SetInt64(hi)) > 0 {
		b.errorf(b.rng(name), "Value out of range", "%q must be between %d and %d.", name, lo, hi)
		return false
	}
	n, _ := bf.Int64()
	*dst = int(n)
	return true
}

func (b *block) float(name string, dst *float64, lo, hi float64) bool {
	v, _, ok := b.value(name, cty.Number)
	if !ok {
		return false
	}
	f, _ := v.AsBigFloat().Float64()
	if f < lo || f > hi {
		b.errorf(b.rng(name), "Value out of range", "%q must be between %g and %g.", name, lo, hi)
		return false
	}
	*dst = f
	return true
}

const durationHint = `use a number with a unit, like "500ms", "10s" or "1m"`

// duration reads a non-negative duration string such as "500ms".
func (b *block) duration(name string, dst *time.Duration) bool {
	v, _, ok := b.value(name, cty.String)
	if !ok {
		return false
	}
	d, err := parseDuration(v.AsString())
	if err != nil {
		b.errorf(b.rng(name), "Invalid duration", "%q: %v.", name, err)
		return false
	}
	*dst = d
	return true
}

// minCallTimeout is the shortest call timeout that can be met: below a
// millisecond a call cannot even be sent over loopback (a round trip
// there takes tens of microseconds, a first connection more), so every
// call would fail with DeadlineExceeded.
const minCallTimeout = time.Millisecond

// callTimeout is duration for a call's timeout, with a warning when it is
// too short to be met.
func (b *block) callTimeout(name string, dst *time.Duration) bool {
	if !b.duration(name, dst) {
		return false
	}
	if *dst > 0 && *dst < minCallTimeout {
		d := &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Timeout too short to be met",
			Detail: fmt.Sprintf("%q = %s is under %s: too short to send a call and get its answer (a loopback round trip alone takes tens of microseconds, a first connection more), so calls would fail with DeadlineExceeded. Did you mean %s?",
				name, *dst, minCallTimeout, suggestMillis(*dst))}
		if r := b.rng(name); r.Filename != "" {
			d.Subject = r.Ptr()
		}
		*b.diags = append(*b.diags, d)
	}
	return true
}

// suggestMillis turns a timeout written in the wrong unit ("500ns",
// "20us") into the millisecond value its author likely meant.
func suggestMillis(d time.Duration) string {
	if d < time.Microsecond {
		return fmt.Sprintf("\"%dms\"", int64(d))
	}
	return fmt.Sprintf("\"%dms\"", int64(d/time.Microsecond))
}

// positiveDuration is duration that also refuses "0s", for settings
// where zero has no meaning (a window, an ejection time).
func (b *block) positiveDuration(name string, dst *time.Duration) bool {
	var d time.Duration
	if !b.duration(name, &d) {
		return false
	}
	if d == 0 {
		b.errorf(b.rng(name), "Invalid duration", "%q must be longer than zero; %s.", name, durationHint)
		delete(b.set, b.prefix+name)
		return false
	}
	*dst = d
	return true
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; %s", s, durationHint)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// size reads a byte size: a number of bytes or a string like "4MiB".
func (b *block) size(name string, dst *int64) bool {
	a, present := b.attrs[name]
	if !present {
		return false
	}
	v, d := a.Expr.Value(b.ctx)
	*b.diags = append(*b.diags, d...)
	if d.HasErrors() || v.IsNull() || !v.IsWhollyKnown() {
		return false
	}
	var s string
	switch v.Type() {
	case cty.Number:
		s = v.AsBigFloat().Text('f', -1)
	case cty.String:
		s = v.AsString()
	default:
		b.errorf(a.Expr.Range(), "Incorrect attribute value type",
			`Inappropriate value for attribute %q: a size such as "4MiB" or a number of bytes required, got %s.`, name, v.Type().FriendlyName())
		return false
	}
	n, err := ParseSize(s)
	if err != nil {
		b.errorf(a.Expr.Range(), "Invalid size", "%q: %v.", name, err)
		return false
	}
	b.set[b.prefix+name] = true
	b.ranges[b.prefix+name] = a.Expr.Range()
	*dst = n
	return true
}

// strList reads a list of strings, also returning each element's range
// (when the list is written literally) so references can be checked one
// by one. A single string is accepted as a list of one when single is set.
func (b *block) strList(name string, dst *[]string, single bool) ([]hcl.Range, bool) {
	a, present := b.attrs[name]
	if !present {
		return nil, false
	}
	if single {
		v, d := a.Expr.Value(b.ctx)
		if !d.HasErrors() && v.IsKnown() && !v.IsNull() && v.Type() == cty.String {
			b.set[b.prefix+name] = true
			b.ranges[b.prefix+name] = a.Expr.Range()
			*dst = []string{v.AsString()}
			return []hcl.Range{a.Expr.Range()}, true
		}
	}
	v, _, ok := b.value(name, cty.List(cty.String))
	if !ok {
		return nil, false
	}
	out := make([]string, 0, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() {
			b.errorf(a.Expr.Range(), "Invalid list element", "%q must not contain null.", name)
			return nil, false
		}
		out = append(out, e.AsString())
	}
	ranges := make([]hcl.Range, len(out))
	exprs, d := hcl.ExprList(a.Expr)
	for i := range ranges {
		ranges[i] = a.Expr.Range()
		if !d.HasErrors() && len(exprs) == len(out) {
			ranges[i] = exprs[i].Range()
		}
	}
	*dst = out
	return ranges, true
}

func (b *block) strMap(name string, dst *map[string]string) bool {
	v, _, ok := b.value(name, cty.Map(cty.String))
	if !ok {
		return false
	}
	out := make(map[string]string, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		if e.IsNull() {
			b.errorf(b.rng(name), "Invalid map element", "%q must not contain null.", name)
			return false
		}
		out[k.AsString()] = e.AsString()
	}
	*dst = out
	return true
}

// content decodes body against schema, listing the valid names in
// "unsupported" errors, and reports repeated singleton blocks.
func content(body hcl.Body, schema *hcl.BodySchema, singletons ...string) (*hcl.BodyContent, hcl.Diagnostics) {
	c, diags := body.Content(schema)
	listValid(diags, schema)
	if c == nil {
		return &hcl.BodyContent{Attributes: hcl.Attributes{}}, diags
	}
	seen := map[string]*hcl.Block{}
	for _, blk := range c.Blocks {
		for _, s := range singletons {
			if blk.Type != s {
				continue
			}
			if first, dup := seen[s]; dup {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Duplicate " + s + " block",
					Detail:   fmt.Sprintf("Only one %s block is allowed here; the first is at %s.", s, first.DefRange),
					Subject:  blk.DefRange.Ptr(),
				})
			}
			seen[s] = blk
		}
	}
	return c, diags
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
