package stack

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/defaults"

	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
	_ "github.com/kiterpc/kite/plugins/registry-local"
)

// TestDefaultsAgree builds a client and a server twice, from Go options
// with zero values and from a kite.hcl that sets nothing it can leave out,
// and compares every field of their effective options (Client.Options,
// Server.Options) by reflection: an option added to ClientOptions or
// ServerOptions later is compared without touching this test. Fields that
// cannot be equal by construction are listed in skip with the reason, and
// interface values are compared by what they are (their Name).
func TestDefaultsAgree(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kite.hcl")
	require.NoError(t, os.WriteFile(path, []byte(`
server "echo" {
  listen   = "127.0.0.1:0"
  registry = "none"
}
client "echo" {
  target = ["127.0.0.1:1"]
}
`), 0o600))
	st, err := Load(path, WithLogger(hclog.NewNullLogger()))
	require.NoError(t, err)
	defer st.Close()

	t.Run("client", func(t *testing.T) {
		hc, err := st.Client("echo")
		require.NoError(t, err)
		// Service and Targets are inputs, not defaults: given the same.
		gc, err := core.NewClient(core.ClientOptions{Service: "echo", Targets: []string{"127.0.0.1:1"}, Logger: hclog.NewNullLogger()})
		require.NoError(t, err)
		defer gc.Close()
		fromHCL, fromGo := hc.Options(), gc.Options()

		// The stack applies kite.hcl's timeout in its outermost filter
		// (so a reload can change it), not through ClientOptions.Timeout.
		st.mu.Lock()
		mc := st.clients[hc]
		st.mu.Unlock()
		require.NotNil(t, mc)
		require.Zero(t, fromHCL.Timeout, "the stack leaves ClientOptions.Timeout to its timeout filter")
		fromHCL.Timeout = mc.timeouts.cur.Load().def
		require.NotEmpty(t, fromHCL.Filters)
		require.Same(t, mc.timeouts, fromHCL.Filters[0], "the timeout filter is the outermost")
		fromHCL.Filters = fromHCL.Filters[1:]

		compareOptions(t, fromGo, fromHCL, map[string]string{
			"Catalog": "the stack builds from its own catalog (spi.Default plus the file's plugins)",
			"Logger":  "the stack names each client's logger after its block",
		})
	})

	t.Run("server", func(t *testing.T) {
		b, err := st.buildServer("echo")
		require.NoError(t, err)
		gs, err := core.NewServer(core.ServerOptions{Logger: hclog.NewNullLogger()})
		require.NoError(t, err)
		defer gs.Close()
		fromHCL, fromGo := b.srv.Options(), gs.Options()

		// kite.hcl's codec names the codec for frames that name none; a
		// Go server with no Codecs serves every codec of its catalog,
		// the default one included.
		require.Len(t, fromHCL.Codecs, 1)
		require.Equal(t, defaults.Codec, fromHCL.Codecs[0].Name())
		_, err = fromGo.Catalog.BuildCodec(defaults.Codec, nil)
		require.NoError(t, err, "the Go server's catalog serves the default codec")
		fromHCL.Codecs = nil

		compareOptions(t, fromGo, fromHCL, map[string]string{
			"Catalog": "the stack builds from its own catalog (spi.Default plus the file's plugins)",
			"Logger":  "the stack names each server's logger after its block",
		})
	})
}

// compareOptions compares every exported field of two option structs:
// interfaces by their Name() (a balancer, codec, transport), slices of
// interfaces element by element the same way, the rest with DeepEqual.
func compareOptions(t *testing.T, fromGo, fromHCL any, skip map[string]string) {
	t.Helper()
	gv, hv := reflect.ValueOf(fromGo), reflect.ValueOf(fromHCL)
	require.Equal(t, gv.Type(), hv.Type())
	compared, exported := 0, 0
	for i := range gv.NumField() {
		f := gv.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		exported++
		if _, ok := skip[f.Name]; ok {
			continue
		}
		compared++
		g, h := optionValue(gv.Field(i)), optionValue(hv.Field(i))
		require.Equal(t, g, h, "%s.%s: Go default %v, kite.hcl default %v", gv.Type().Name(), f.Name, g, h)
	}
	require.Equal(t, exported-len(skip), compared, "every field but the skipped ones is compared")
	require.Greater(t, compared, 10, "the options have more fields than that")
}

type named interface{ Name() string }

// optionValue turns an option value into something DeepEqual compares by
// meaning: a component by its type and name, nil and empty slices alike.
func optionValue(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return nil
		}
		if n, ok := v.Interface().(named); ok {
			return reflect.TypeOf(n).String() + ":" + n.Name()
		}
		return reflect.TypeOf(v.Interface()).String()
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = optionValue(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.Len() == 0 {
			return nil
		}
	case reflect.Pointer:
		if !v.IsNil() && v.Elem().Kind() == reflect.Struct {
			return v.Elem().Interface()
		}
	}
	return v.Interface()
}
