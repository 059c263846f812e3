package gen

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/tools/go/packages"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./internal/gen -update to create it")
	assert.Equal(t, string(want), string(got), "%s differs; if the change is intended, run go test ./internal/gen -update", path)
}

// typeCheck loads the package in dir with extra files added (path →
// source) and fails on any error: generated code must compile.
func typeCheck(t *testing.T, dir string, extra map[string][]byte) {
	t.Helper()
	abs, err := filepath.Abs(dir)
	require.NoError(t, err)
	overlay := map[string][]byte{}
	for name, src := range extra {
		overlay[filepath.Join(abs, name)] = src
	}
	pkgs, err := packages.Load(&packages.Config{
		Mode:    packages.NeedName | packages.NeedTypes | packages.NeedSyntax | packages.NeedTypesInfo,
		Dir:     abs,
		Overlay: overlay,
	}, ".")
	require.NoError(t, err)
	require.Len(t, pkgs, 1)
	for _, e := range pkgs[0].Errors {
		t.Errorf("generated code does not compile: %v", e)
	}
}

// ifacePkg loads testdata/iface once for every test that reads from it:
// go list is the slow part of a load (LoadInterface is a load followed
// by interfaceFile, which these tests call directly).
var ifacePkg = sync.OnceValues(func() (*packages.Package, error) {
	dir, err := filepath.Abs("testdata/iface")
	if err != nil {
		return nil, err
	}
	pkgs, err := packages.Load(&packages.Config{
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo,
		Dir:  dir,
	}, ".")
	if err != nil {
		return nil, err
	}
	return pkgs[0], nil
})

func loadTestdata(t *testing.T, opts LoadOptions) (*File, error) {
	t.Helper()
	pkg, err := ifacePkg()
	require.NoError(t, err)
	opts.Dir = "testdata/iface"
	return interfaceFile(pkg, opts.Dir, opts)
}

func TestInterfaceGolden(t *testing.T) {
	t.Parallel()
	f, err := loadTestdata(t, LoadOptions{Type: "Catalog"})
	require.NoError(t, err)
	src, err := Emit(f)
	require.NoError(t, err)
	golden(t, "catalog.golden", src)
	typeCheck(t, "testdata/iface", map[string][]byte{"catalog_kite.go": src})

	svc := f.Services[0]
	idem := map[string]bool{}
	kinds := map[string]Kind{}
	for _, m := range svc.Methods {
		idem[m.Name] = m.Idempotent
		kinds[m.Name] = m.Kind
	}
	// Both directive placements count: a doc line and a trailing comment.
	assert.Equal(t, map[string]bool{"Ping": false, "Get": true, "Put": false, "Index": false, "Lookup": true, "Watch": false, "Names": false}, idem)
	assert.Equal(t, ServerStream, kinds["Watch"])
	assert.Equal(t, ServerStream, kinds["Names"])
	assert.Equal(t, Unary, kinds["Put"])
}

// TestServiceNameOverride: -name changes the wire name, not the Go names.
func TestServiceNameOverride(t *testing.T) {
	f, err := loadTestdata(t, LoadOptions{Type: "Catalog", ServiceName: "catalog_v2"})
	require.NoError(t, err)
	src, err := Emit(f)
	require.NoError(t, err)
	s := string(src)
	assert.Contains(t, s, `Catalog_ServiceName           = "catalog_v2"`)
	assert.Contains(t, s, `Catalog_Get_FullMethodName    = "catalog_v2.Get"`)
	assert.Contains(t, s, "func NewCatalogClient(")

	f, err = loadTestdata(t, LoadOptions{Type: "Catalog", ServiceName: "a.b"})
	require.NoError(t, err)
	_, err = Emit(f)
	assert.ErrorContains(t, err, "may not be empty or contain '.'")
}

// TestStaleOutputIgnored: a broken, stale generated file in the package
// does not stop regeneration.
func TestStaleOutputIgnored(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/iface/iface.go")
	require.NoError(t, err)
	// The temp dir is outside the module: give it one of its own.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/iface\n\ngo 1.26\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "iface.go"), src, 0o644))
	out := filepath.Join(dir, "catalog_kite.go")
	require.NoError(t, os.WriteFile(out, []byte("package iface\n\nfunc NewCatalogClient() Catalog { return undefinedThing }\n"), 0o644))

	f, err := LoadInterface(LoadOptions{Dir: dir, Type: "Catalog", Output: out})
	require.NoError(t, err)
	assert.Len(t, f.Services[0].Methods, 7)
}

func TestInterfaceErrors(t *testing.T) {
	for _, tc := range []struct{ typ, want string }{
		{"NoContext", "unsupported signature"},
		{"NoError", "unsupported signature"},
		{"ChanArg", "is a channel"},
		{"IfaceResult", "is an interface"},
		{"Variadic", "variadic"},
		{"BadSend", "send func(Resp) error"},
		{"Typo", "unknown directive //kite:idempotnet"},
		{"Empty", "has no methods"},
		{"Generic", "is generic"},
		{"NotAnInterface", "is not an interface"},
		{"Missing", "no type Missing in package iface"},
		{"Item", "is not an interface"},
		{"", "no interface type given"},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			_, err := loadTestdata(t, LoadOptions{Type: tc.typ})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			if strings.Contains(tc.want, "signature") || tc.typ == "ChanArg" {
				// Errors point at the method in the source.
				assert.Contains(t, err.Error(), "iface.go:")
			}
		})
	}
}

func TestImportsAvoidCollisions(t *testing.T) {
	im := NewImports("example.com/self")
	im.Reserve("core")
	assert.Equal(t, "core1", im.Name(corePath, "core"))
	assert.Equal(t, "core1", im.Name(corePath, "core"), "stable on reuse")
	assert.Equal(t, "", im.Name("example.com/self", "self"))
	assert.Equal(t, "req1", im.Name("example.com/req", "req"), "local variable names are avoided")
	assert.Equal(t, "x_y", im.Name("example.com/x-y", ""))
	assert.Equal(t, "core2", im.Name("example.com/other/core", "core"))
	im.Name(ioPath, "io")
	var b strings.Builder
	im.write(&b)
	assert.Equal(t, `import (
	"io"

	core2 "example.com/other/core"
	req1 "example.com/req"
	x_y "example.com/x-y"
	core1 "github.com/kiterpc/kite/core"
)

`, b.String())
}

func TestLowerFirst(t *testing.T) {
	for in, want := range map[string]string{
		"UserService": "userService", "HTTPService": "httpService", "API": "api", "X": "x", "userService": "userService",
	} {
		assert.Equal(t, want, lowerFirst(in), in)
	}
}
