package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core/defaults"
	"github.com/kiterpc/kite/core/resilience"
)

// TestDefaultsTableMatchesKiteHCL decodes a kite.hcl that sets nothing it
// can leave out and checks every row of the core/defaults table against
// the decoded attribute, found by reflection from the row's block and
// attribute names (max_conn_concurrency in server.limits is
// ServerConfig.Limits.MaxConnConcurrency). A row whose attribute cannot
// be found fails, so a new table row needs its kite.hcl attribute.
func TestDefaultsTableMatchesKiteHCL(t *testing.T) {
	src := `
server "s" {
  listen = "127.0.0.1:0"
  compression { name = "zstd" }
}
client "c" {
  compression { name = "zstd" }
}
admin {}
probes {}
`
	f, diags := Parse([]byte(src), "kite.hcl", testCatalog())
	require.False(t, diags.HasErrors(), "%v", diags)
	srv, _ := f.Server("s")
	cl, _ := f.Client("c")
	require.NotEmpty(t, defaults.Table)
	for _, row := range defaults.Table {
		t.Run(row.Block+"."+row.Attr, func(t *testing.T) {
			blocks := strings.Split(row.Block, ".")
			var v reflect.Value
			switch blocks[0] {
			case "server":
				v = reflect.ValueOf(srv).Elem()
			case "client":
				v = reflect.ValueOf(cl).Elem()
			case "admin":
				v = reflect.ValueOf(f.Admin).Elem()
			case "probes":
				v = reflect.ValueOf(f.Probes).Elem()
			case "compression": // a block of both; the server's is checked here
				v = reflect.ValueOf(srv).Elem()
				blocks = []string{"server", "compression"}
			default:
				t.Fatalf("table row in unknown block %q", row.Block)
			}
			for _, b := range blocks[1:] {
				v = field(t, v, b)
			}
			if row.Attr == "backoff" {
				want, err := resilience.ParseBackoff(row.Value.(string))
				require.NoError(t, err)
				require.Equal(t, want.Min, field(t, v, "backoff_min").Interface())
				require.Equal(t, want.Max, field(t, v, "backoff_max").Interface())
				return
			}
			got := field(t, v, row.Attr)
			want := reflect.ValueOf(row.Value)
			if row.Value == nil || (want.Kind() == reflect.Slice && want.Len() == 0) {
				require.True(t, got.IsZero() || got.Len() == 0, "%s.%s = %v, want empty", row.Block, row.Attr, got.Interface())
				return
			}
			if want.Type() != got.Type() && want.CanConvert(got.Type()) {
				want = want.Convert(got.Type())
			}
			require.Equal(t, want.Interface(), got.Interface(), "kite.hcl %s.%s", row.Block, row.Attr)
		})
	}
	// The client's compression block takes the same threshold.
	require.EqualValues(t, defaults.CompressThreshold, cl.Compression.Threshold)
	require.Equal(t, defaults.ShutdownTimeout, DefaultServerConfig("x").ShutdownTimeout)
	require.Equal(t, time.Duration(defaults.Timeout), DefaultClientConfig("x").Timeout)
}

// field returns v's field for a kite.hcl name: snake_case to CamelCase,
// through a pointer.
func field(t *testing.T, v reflect.Value, name string) reflect.Value {
	t.Helper()
	if v.Kind() == reflect.Pointer {
		require.False(t, v.IsNil(), "block for %q is nil", name)
		v = v.Elem()
	}
	var b strings.Builder
	for _, part := range strings.Split(name, "_") {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	goName := b.String()
	f := v.FieldByName(goName)
	require.True(t, f.IsValid(), "no field %s (for attribute %q) in %s", goName, name, v.Type())
	return f
}
