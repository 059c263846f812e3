package gen

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/tools/go/packages"
)

// Directive is the method comment that marks a method idempotent.
const Directive = "kite:idempotent"

// LoadOptions says which interface to read.
type LoadOptions struct {
	// Dir is the directory of the package holding the interface.
	Dir string
	// Type is the interface's name.
	Type string
	// ServiceName is the name on the wire; default Type.
	ServiceName string
	// Output is the file the stubs will be written to. An existing
	// version of it is hidden from the type checker, so stale stubs
	// (from an interface that has since changed) never stop
	// regeneration.
	Output string
	// Version is printed in the header ("kite gen" when empty).
	Generator string
	// Tags are build tags for loading, e.g. "integration".
	Tags []string
}

// LoadInterface reads the interface opts.Type from the package in
// opts.Dir with go/packages and go/types, and returns the file to emit
// into that same package.
//
// Every method must look like one of
//
//	M(ctx context.Context, req Req) (Resp, error)         // unary
//	M(ctx context.Context, req Req) error                 // unary, no response body
//	M(ctx context.Context, req Req, send func(Resp) error) error // server-streaming
//
// where Req and Resp are concrete types the codec can encode (not
// interfaces, channels or functions). A `//kite:idempotent` line in a
// method's doc comment marks it idempotent.
func LoadInterface(opts LoadOptions) (*File, error) {
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	cfg := &packages.Config{
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedSyntax |
			packages.NeedTypes | packages.NeedTypesInfo,
		Dir:   dir,
		Tests: false,
	}
	if len(opts.Tags) > 0 {
		cfg.BuildFlags = []string{"-tags=" + strings.Join(opts.Tags, ",")}
	}
	if opts.Output != "" {
		if out, err := filepath.Abs(opts.Output); err == nil {
			if stub, ok := packageOnly(out); ok {
				cfg.Overlay = map[string][]byte{out: stub}
			}
		}
	}
	pkgs, err := packages.Load(cfg, ".")
	if err != nil {
		return nil, fmt.Errorf("loading package in %s: %w", opts.Dir, err)
	}
	if len(pkgs) != 1 {
		return nil, fmt.Errorf("loading package in %s: got %d packages", opts.Dir, len(pkgs))
	}
	return interfaceFile(pkgs[0], dir, opts)
}

// interfaceFile builds the file for opts.Type from a loaded package.
func interfaceFile(pkg *packages.Package, dir string, opts LoadOptions) (*File, error) {
	if opts.Type == "" {
		return nil, errors.New("no interface type given")
	}
	if pkg.Types == nil || pkg.Types.Scope() == nil {
		return nil, fmt.Errorf("loading package in %s: %s", opts.Dir, pkgErrors(pkg))
	}
	obj := pkg.Types.Scope().Lookup(opts.Type)
	if obj == nil {
		msg := fmt.Sprintf("no type %s in package %s (%s)", opts.Type, pkg.Name, dir)
		if len(pkg.Errors) > 0 {
			msg += ": " + pkgErrors(pkg)
		}
		return nil, errors.New(msg)
	}
	tn, ok := obj.(*types.TypeName)
	if !ok {
		return nil, fmt.Errorf("%s is a %s, not a type", opts.Type, objKind(obj))
	}
	named, _ := tn.Type().(*types.Named)
	if named == nil {
		return nil, fmt.Errorf("%s is an alias; name the interface itself", opts.Type)
	}
	if named.TypeParams().Len() > 0 {
		return nil, fmt.Errorf("%s is generic; kite gen needs a concrete interface", opts.Type)
	}
	iface, ok := named.Underlying().(*types.Interface)
	if !ok {
		return nil, fmt.Errorf("%s is not an interface (it is %s)", opts.Type, named.Underlying())
	}
	if !iface.IsMethodSet() {
		return nil, fmt.Errorf("%s is a constraint interface (it has a type set), not a method set", opts.Type)
	}

	im := NewImports(pkg.PkgPath)
	for _, n := range pkg.Types.Scope().Names() {
		im.Reserve(n)
	}
	docs := methodDocs(pkg)

	name := opts.ServiceName
	if name == "" {
		name = opts.Type
	}
	svc := Service{Name: name, GoName: opts.Type}

	methods := make([]*types.Func, 0, iface.NumMethods())
	for i := 0; i < iface.NumMethods(); i++ {
		methods = append(methods, iface.Method(i))
	}
	// Source order reads best; types.Interface sorts by name.
	sort.SliceStable(methods, func(i, j int) bool { return methods[i].Pos() < methods[j].Pos() })

	var errs []error
	q := im.Qualifier()
	for _, fn := range methods {
		m, err := classify(fn, q)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s.%s: %w", position(pkg.Fset, fn.Pos()), opts.Type, fn.Name(), err))
			continue
		}
		if d, ok := docs[fn.Pos()]; ok {
			m.Doc = d.lines
			for _, dir := range d.directives {
				switch dir {
				case Directive:
					m.Idempotent = true
				default:
					errs = append(errs, fmt.Errorf("%s: %s.%s: unknown directive //%s (known: //%s)",
						position(pkg.Fset, fn.Pos()), opts.Type, fn.Name(), dir, Directive))
				}
			}
		}
		svc.Methods = append(svc.Methods, m)
	}
	if len(errs) > 0 {
		if len(pkg.Errors) > 0 {
			errs = append(errs, fmt.Errorf("the package also has errors: %s", pkgErrors(pkg)))
		}
		return nil, errors.Join(errs...)
	}
	if len(svc.Methods) == 0 {
		return nil, fmt.Errorf("%s has no methods", opts.Type)
	}
	gen := opts.Generator
	if gen == "" {
		gen = "kite gen"
	}
	return &File{
		Style:     StyleInterface,
		Generator: gen,
		Header: []string{
			fmt.Sprintf("Source: interface %s in package %s (%s).", opts.Type, pkg.Name, pkg.PkgPath),
		},
		Package:  pkg.Name,
		Imports:  im,
		Services: []Service{svc},
	}, nil
}

// classify checks fn's signature and returns its method model.
func classify(fn *types.Func, q types.Qualifier) (Method, error) {
	sig := fn.Type().(*types.Signature)
	m := Method{Name: fn.Name()}
	params, results := sig.Params(), sig.Results()
	const shapes = "want M(ctx context.Context, req Req) (Resp, error), " +
		"M(ctx context.Context, req Req) error, or " +
		"M(ctx context.Context, req Req, send func(Resp) error) error"
	if sig.Variadic() {
		return m, fmt.Errorf("variadic methods cannot be remote; %s", shapes)
	}
	if params.Len() < 2 || params.Len() > 3 || !isContext(params.At(0).Type()) ||
		results.Len() < 1 || results.Len() > 2 || !isError(results.At(results.Len()-1).Type()) {
		return m, fmt.Errorf("unsupported signature %s; %s", types.TypeString(sig, q), shapes)
	}
	req, err := wireType(params.At(1).Type(), q)
	if err != nil {
		return m, fmt.Errorf("request: %w", err)
	}
	m.Req = req
	switch {
	case params.Len() == 2 && results.Len() == 2:
		m.Kind = Unary
		if m.Resp, err = wireType(results.At(0).Type(), q); err != nil {
			return m, fmt.Errorf("response: %w", err)
		}
	case params.Len() == 2 && results.Len() == 1:
		m.Kind = Unary
		m.NoResp = true
	case params.Len() == 3 && results.Len() == 1:
		send, ok := params.At(2).Type().Underlying().(*types.Signature)
		if !ok || send.Variadic() || send.Params().Len() != 1 || send.Results().Len() != 1 || !isError(send.Results().At(0).Type()) {
			return m, fmt.Errorf("the third parameter must be a send func(Resp) error for a server-streaming method; %s", shapes)
		}
		m.Kind = ServerStream
		if m.Resp, err = wireType(send.Params().At(0).Type(), q); err != nil {
			return m, fmt.Errorf("streamed response: %w", err)
		}
	default:
		return m, fmt.Errorf("unsupported signature %s; %s", types.TypeString(sig, q), shapes)
	}
	return m, nil
}

// wireType checks that values of t can be encoded by a codec and decoded
// into a fresh value, and writes t for the generated file.
func wireType(t types.Type, q types.Qualifier) (Type, error) {
	if err := encodable(t, 0); err != nil {
		return Type{}, err
	}
	if p, ok := t.(*types.Pointer); ok {
		if _, inner := p.Elem().(*types.Pointer); !inner {
			return Type{Expr: types.TypeString(t, q), Elem: types.TypeString(p.Elem(), q)}, nil
		}
	}
	return Type{Expr: types.TypeString(t, q)}, nil
}

func encodable(t types.Type, depth int) error {
	if depth > 8 {
		return nil
	}
	switch u := t.Underlying().(type) {
	case *types.Basic:
		switch {
		case u.Kind() == types.Invalid:
			return fmt.Errorf("type %s does not type-check (fix the package first)", t)
		case u.Kind() == types.UnsafePointer, u.Kind() == types.Uintptr:
			return fmt.Errorf("type %s cannot cross the wire", t)
		}
	case *types.Interface:
		return fmt.Errorf("type %s is an interface: the receiver cannot know which concrete type to decode; use a concrete type", t)
	case *types.Chan:
		return fmt.Errorf("type %s is a channel; stream with send func(Resp) error instead", t)
	case *types.Signature:
		return fmt.Errorf("type %s is a function and cannot cross the wire", t)
	case *types.Pointer:
		return encodable(u.Elem(), depth+1)
	case *types.Slice:
		return encodable(u.Elem(), depth+1)
	case *types.Array:
		return encodable(u.Elem(), depth+1)
	case *types.Map:
		if err := encodable(u.Key(), depth+1); err != nil {
			return err
		}
		return encodable(u.Elem(), depth+1)
	}
	if _, ok := t.(*types.TypeParam); ok {
		return fmt.Errorf("type parameter %s cannot cross the wire", t)
	}
	return nil
}

func isContext(t types.Type) bool {
	n, ok := t.(*types.Named)
	if !ok {
		if a, isAlias := t.(*types.Alias); isAlias {
			return isContext(types.Unalias(a))
		}
		return false
	}
	o := n.Obj()
	return o.Pkg() != nil && o.Pkg().Path() == "context" && o.Name() == "Context"
}

func isError(t types.Type) bool { return types.Identical(t, types.Universe.Lookup("error").Type()) }

type methodDoc struct {
	lines      []string
	directives []string // "kite:..." lines, without the slashes
}

// methodDocs maps the position of every interface method name in the
// package to its doc comment and kite directives.
func methodDocs(pkg *packages.Package) map[token.Pos]methodDoc {
	out := map[token.Pos]methodDoc{}
	for _, f := range pkg.Syntax {
		ast.Inspect(f, func(n ast.Node) bool {
			it, ok := n.(*ast.InterfaceType)
			if !ok || it.Methods == nil {
				return true
			}
			for _, field := range it.Methods.List {
				if len(field.Names) == 0 {
					continue
				}
				var d methodDoc
				for _, cg := range []*ast.CommentGroup{field.Doc, field.Comment} {
					if cg == nil {
						continue
					}
					for _, c := range cg.List {
						if text, ok := strings.CutPrefix(c.Text, "//"); ok && strings.HasPrefix(strings.TrimSpace(text), "kite:") {
							d.directives = append(d.directives, strings.TrimSpace(text))
						}
					}
				}
				if field.Doc != nil {
					// Text drops directive lines such as //kite:idempotent.
					text := strings.TrimRight(field.Doc.Text(), "\n")
					if text != "" {
						d.lines = strings.Split(text, "\n")
					}
				}
				for _, id := range field.Names {
					out[id.Pos()] = d
				}
			}
			return true
		})
	}
	return out
}

// packageOnly returns a stand-in for an existing generated file: just its
// package clause, so the type checker sees none of its declarations.
func packageOnly(path string) ([]byte, bool) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.PackageClauseOnly)
	if err != nil {
		return nil, false
	}
	return []byte("package " + f.Name.Name + "\n"), true
}

func pkgErrors(pkg *packages.Package) string {
	var msgs []string
	for i, e := range pkg.Errors {
		if i == 5 {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(pkg.Errors)-i))
			break
		}
		msgs = append(msgs, e.Error())
	}
	return strings.Join(msgs, "; ")
}

func position(fset *token.FileSet, pos token.Pos) string {
	p := fset.Position(pos)
	if p.Filename == "" {
		return "?"
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, p.Filename); err == nil && !strings.HasPrefix(rel, "..") {
			p.Filename = rel
		}
	}
	return p.String()
}

func objKind(o types.Object) string {
	switch o.(type) {
	case *types.Func:
		return "function"
	case *types.Var:
		return "variable"
	case *types.Const:
		return "constant"
	}
	return "declaration"
}
