package stack_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"
)

// TestFieldErrorAtAttribute: a plugin that rejects a value with
// spi.FieldError (here a registry refusing one of its server addresses)
// is reported at that attribute's file:line:col, not at the block.
func TestFieldErrorAtAttribute(t *testing.T) {
	cat := &spi.Catalog{}
	require.NoError(t, cat.Add(spi.Entry{
		Kind: spi.KindRegistry, Name: "picky",
		Schema: spi.Schema{
			{Name: "servers", Type: spi.TypeStringList, Required: true},
			{Name: "root", Type: spi.TypeString},
		},
		New: func(cfg spi.Config) (any, error) {
			return nil, spi.FieldErrorf("servers", "picky registry: servers[1] %q has no port", "b")
		},
	}))
	dir := t.TempDir()
	path := writeHCL(t, dir, "kite.hcl", `registry "picky" "p" {
  root    = "/x"
  servers = ["a:1", "b"]
}
`)
	st, err := stack.Load(path, stack.WithCatalog(cat), stack.WithLogger(quiet))
	require.NoError(t, err)
	defer st.Close()
	_, err = st.Registry("p")
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Base(path)+":3:13: building registry \"picky\" \"p\": registry \"picky\": picky registry: servers[1] \"b\" has no port")
	assert.Equal(t, "servers", spi.FieldOf(err))
}
