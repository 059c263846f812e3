package gen

import (
	"go/types"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Import paths the generated code itself uses.
const (
	corePath    = "github.com/kiterpc/kite/core"
	spiPath     = "github.com/kiterpc/kite/spi"
	contextPath = "context"
	ioPath      = "io"
)

// localNames are identifiers the emitter declares inside generated
// functions; an import may not take one of them as its name, or it would
// be shadowed where it is used.
var localNames = []string{"c", "ctx", "req", "out", "zero", "err", "srv", "st", "stream", "send", "m", "x", "cancel", "impl", "s"}

// Imports tracks the packages a generated file refers to and gives each a
// name unique in the file. Names already declared in the target package
// (reserved with Reserve) and the emitter's local variable names are
// avoided by suffixing a number.
type Imports struct {
	self   string            // import path of the package being generated
	byPath map[string]string // import path → local name
	taken  map[string]bool   // names in use or reserved
}

// NewImports returns an import set for a file of package self (an import
// path; types of that package are written unqualified).
func NewImports(self string) *Imports {
	im := &Imports{self: self, byPath: map[string]string{}, taken: map[string]bool{}}
	for _, n := range localNames {
		im.taken[n] = true
	}
	return im
}

// Reserve marks names declared at package level in the target package, so
// no import is given one of them.
func (im *Imports) Reserve(names ...string) {
	for _, n := range names {
		im.taken[n] = true
	}
}

// Name returns the local name of the package at importPath, adding the
// import on first use. name is the package's declared name (its last path
// element is used when empty). It returns "" for the file's own package.
func (im *Imports) Name(importPath, name string) string {
	if importPath == im.self || importPath == "" {
		return ""
	}
	if n, ok := im.byPath[importPath]; ok {
		return n
	}
	if name == "" {
		name = path.Base(importPath)
	}
	name = sanitize(name)
	local := name
	for i := 1; im.taken[local]; i++ {
		local = name + strconv.Itoa(i)
	}
	im.taken[local] = true
	im.byPath[importPath] = local
	return local
}

// Ident returns the qualified identifier for name declared in importPath.
func (im *Imports) Ident(importPath, pkgName, name string) string {
	if q := im.Name(importPath, pkgName); q != "" {
		return q + "." + name
	}
	return name
}

// Qualifier returns a go/types qualifier that records every package it is
// asked about, for writing types with types.TypeString.
func (im *Imports) Qualifier() types.Qualifier {
	return func(p *types.Package) string { return im.Name(p.Path(), p.Name()) }
}

// write renders the import block.
func (im *Imports) write(b *strings.Builder) {
	if len(im.byPath) == 0 {
		return
	}
	paths := make([]string, 0, len(im.byPath))
	for p := range im.byPath {
		paths = append(paths, p)
	}
	// Standard library first, then the rest, as goimports groups them.
	sort.Slice(paths, func(i, j int) bool {
		si, sj := isStd(paths[i]), isStd(paths[j])
		if si != sj {
			return si
		}
		return paths[i] < paths[j]
	})
	b.WriteString("import (\n")
	for i, p := range paths {
		if i > 0 && isStd(paths[i-1]) && !isStd(p) {
			b.WriteString("\n")
		}
		local := im.byPath[p]
		if local == path.Base(p) {
			b.WriteString("\t" + strconv.Quote(p) + "\n")
		} else {
			b.WriteString("\t" + local + " " + strconv.Quote(p) + "\n")
		}
	}
	b.WriteString(")\n\n")
}

// isStd reports whether p looks like a standard-library path (no dot in
// its first element).
func isStd(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".")
}

// sanitize turns a package name into a valid identifier.
func sanitize(name string) string {
	var b strings.Builder
	for i, r := range name {
		switch {
		case r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			if i == 0 {
				b.WriteRune('_')
			}
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
	}
	if b.Len() == 0 {
		return "pkg"
	}
	return b.String()
}
