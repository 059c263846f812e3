package config

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAdminAndLogBlocks(t *testing.T) {
	f := mustParse(t, `
admin { listen = "127.0.0.1:0" }
log {
  level  = "DEBUG"
  format = "json"
}
`)
	require.NotNil(t, f.Admin)
	assert.Equal(t, "127.0.0.1:0", f.Admin.Listen)
	assert.True(t, f.Admin.Pprof)
	assert.True(t, f.Admin.Loopback)
	require.NotNil(t, f.Log)
	assert.Equal(t, "debug", f.Log.Level)
	assert.Equal(t, hclog.Debug, f.Log.HCLogLevel())
	assert.True(t, f.Log.JSON())
	assert.Empty(t, f.Warnings)
}

func TestAdminAndLogDefaults(t *testing.T) {
	f := mustParse(t, `client "x" { target = "127.0.0.1:1" }`)
	assert.Nil(t, f.Admin, "the admin listener is opt-in")
	assert.Nil(t, f.Log)

	f = mustParse(t, "admin {}\nlog {}\n")
	assert.Equal(t, DefaultAdminListen, f.Admin.Listen)
	assert.True(t, f.Admin.Loopback)
	assert.Equal(t, "info", f.Log.Level)
	assert.Equal(t, hclog.Info, f.Log.HCLogLevel())
	assert.False(t, f.Log.JSON())

	f = mustParse(t, `admin {
  listen = "localhost:9100"
  pprof  = false
}`)
	assert.True(t, f.Admin.Loopback)
	assert.False(t, f.Admin.Pprof)
}

func TestAdminOffLoopbackWarns(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:9100", ":9100", "10.1.2.3:9100"} {
		f, diags := Parse([]byte(`admin { listen = "`+addr+`" }`), "w.hcl", testCatalog())
		require.False(t, diags.HasErrors(), addr)
		require.Len(t, f.Warnings, 1, addr)
		w := f.Warnings[0]
		assert.Equal(t, hcl.DiagWarning, w.Severity)
		assert.Equal(t, "Admin listener not on loopback", w.Summary)
		assert.Equal(t, 1, w.Subject.Start.Line)
		assert.Equal(t, 18, w.Subject.Start.Column, "the warning points at the address")
		assert.False(t, f.Admin.Loopback)
	}
}

func TestAdminAndLogErrors(t *testing.T) {
	cases := []struct{ src, summary string }{
		{`admin { listen = "9100" }`, "Invalid address"},
		{`admin { listen = "" }`, "Empty value"},
		{`admin { port = 9100 }`, "Unsupported argument"},
		{"admin {}\nadmin {}", "Duplicate admin block"},
		{`log { level = "loud" }`, "Unknown log level"},
		{`log { format = "yaml" }`, "Unknown log format"},
		{"log {}\nlog {}", "Duplicate log block"},
	}
	for _, c := range cases {
		_, diags := Parse([]byte(c.src), "e.hcl", testCatalog())
		require.True(t, diags.HasErrors(), c.src)
		var sums []string
		for _, d := range diags {
			sums = append(sums, d.Summary)
		}
		assert.Contains(t, sums, c.summary, c.src)
	}
}
