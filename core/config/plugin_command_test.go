package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	sumA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	sumB = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
)

// A plugin run by an interpreter: command[0] is the executable (bare:
// found on PATH at start), files are resolved against the file's
// directory, and an argument naming a file runs that very file.
func TestPluginCommandAndFiles(t *testing.T) {
	src := fmt.Sprintf(`plugin "filter" "header" {
  command = ["python3", "-I", "plugins/header.py", "--verbose"]
  sha256  = %q
  files = {
    "plugins/header.py"           = %q
    "../sdk/kite_plugin/__init__.py" = %q
  }
  env = { A = "1" }
}`, sumA, sumB, sumA)
	f, diags := Parse([]byte(src), "/etc/kite/kite.hcl", testCatalog())
	require.False(t, diags.HasErrors(), diags.Error())
	require.Len(t, f.Plugins, 1)
	d := f.Plugins[0]
	assert.Equal(t, "python3", d.Path)
	assert.Equal(t, sumA, d.SHA256)
	assert.Equal(t, []string{"-I", "/etc/kite/plugins/header.py", "--verbose"}, d.Args)
	assert.Equal(t, map[string]string{
		"/etc/kite/plugins/header.py":      strings.ToLower(sumB),
		"/etc/sdk/kite_plugin/__init__.py": sumA,
	}, d.Files)

	// An interpreter given by path is relative to the file too.
	f, diags = Parse([]byte(fmt.Sprintf(`plugin "filter" "x" {
  command = ["./venv/bin/python", "x.py"]
  sha256  = %q
}`, sumA)), "/etc/kite/kite.hcl", testCatalog())
	require.False(t, diags.HasErrors(), diags.Error())
	assert.Equal(t, "/etc/kite/venv/bin/python", f.Plugins[0].Path)
	assert.Equal(t, []string{"x.py"}, f.Plugins[0].Args, "an argument not in files passes verbatim")
}

func TestPluginCommandErrors(t *testing.T) {
	cases := []struct {
		name, body, pos, summary string
	}{
		{"neither path nor command", `sha256 = "` + sumA + `"`, "1:1", "Missing plugin executable"},
		{"both path and command", `path = "x"
  command = ["python3"]
  sha256 = "` + sumA + `"`, "3:13", "Both path and command"},
		{"empty command", `command = []
  sha256 = "` + sumA + `"`, "2:13", "Empty command"},
		{"command and args", `command = ["python3", "x.py"]
  args = ["-v"]
  sha256 = "` + sumA + `"`, "3:10", "Both command and args"},
		{"bad file sum", `command = ["python3", "x.py"]
  sha256 = "` + sumA + `"
  files = { "x.py" = "abc" }`, "4:11", "Invalid sha256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := "plugin \"filter\" \"x\" {\n  " + c.body + "\n}"
			_, diags := Parse([]byte(src), "a.hcl", testCatalog())
			require.True(t, diags.HasErrors(), "no error for %s", src)
			d := diags[0]
			assert.Equal(t, c.summary, d.Summary, d.Error())
			require.NotNil(t, d.Subject)
			assert.Equal(t, c.pos, fmt.Sprintf("%d:%d", d.Subject.Start.Line, d.Subject.Start.Column), d.Error())
		})
	}
}
