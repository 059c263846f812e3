package config

import (
	"fmt"
	"os"
	"path/filepath"
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
	assert.False(t, f.Admin.Pprof, "pprof is off unless asked")
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
  pprof  = true
}`)
	assert.True(t, f.Admin.Loopback)
	assert.True(t, f.Admin.Pprof)
}

func TestProbesBlock(t *testing.T) {
	f := mustParse(t, `client "x" { target = "127.0.0.1:1" }`)
	assert.Nil(t, f.Probes, "the probe listener is opt-in")

	f = mustParse(t, "probes {}\n")
	require.NotNil(t, f.Probes)
	assert.Equal(t, ":9101", f.Probes.Listen, "every interface: the kubelet probes the pod IP")
	assert.Empty(t, f.Warnings, "binding every interface is the point of the probe listener: no warning")

	f = mustParse(t, `probes { listen = "0.0.0.0:8086" }`)
	assert.Equal(t, "0.0.0.0:8086", f.Probes.Listen)
	assert.Empty(t, f.Warnings)
}

func TestProbesErrorsNameTheAttribute(t *testing.T) {
	cases := []struct {
		src, summary string
		line, col    int
	}{
		{"probes {\n  listen = \"8086\"\n}", "Invalid address", 2, 12},
		{"probes {\n  listen = \"\"\n}", "Empty value", 2, 12},
		{"probes {\n  pprof = true\n}", "Unsupported argument", 2, 3},
		{"probes {}\n\nprobes {}", "Duplicate probes block", 3, 1},
		{"probes {\n  listen = 8086\n}", "", 2, 12},
	}
	for _, c := range cases {
		_, err := Load(writeTemp(t, c.src), testCatalog())
		require.Error(t, err, c.src)
		if c.summary != "" {
			assert.Contains(t, err.Error(), c.summary, c.src)
		}
		assert.Contains(t, err.Error(), fmt.Sprintf("kite.hcl:%d:%d: ", c.line, c.col), c.src)
	}
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

func writeTemp(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kite.hcl")
	require.NoError(t, os.WriteFile(p, []byte(src), 0o600))
	return p
}
