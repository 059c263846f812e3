package polyglot

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiterpc/kite/core/stack"
	"github.com/kiterpc/kite/spi"
)

// TestBadPythonPlugins loads broken Python plugins from kite.hcl: each
// fails Load within the start timeout with an error naming the kite.hcl
// position of its block, the plugin (kind, name, interpreter and
// script), and what it did wrong.
func TestBadPythonPlugins(t *testing.T) {
	needPython(t)
	// The silent plugin waits out its start timeout, so it gets a short
	// one; the others must fail on their own well before theirs (a
	// Python start with grpcio imports can take seconds on a loaded
	// machine).
	cases := []struct {
		script  string
		timeout time.Duration
		want    []string
	}{
		{"stdout_first.py", 10 * time.Second, []string{
			"the first line on its stdout must be the handshake line",
			"Unrecognized remote plugin message: starting the header filter...",
		}},
		{"wrong_version.py", 10 * time.Second, []string{
			"it answered bridge protocol version 2 in its handshake line, this host speaks 1",
		}},
		{"sdk_too_new.py", 10 * time.Second, []string{
			"it exited (or closed its stdout) before writing its handshake line",
			"the host offers bridge protocol version(s) 1; this plugin speaks 2", // its stderr
		}},
		{"silent.py", 2 * time.Second, []string{
			"no handshake line on its stdout within the start timeout of ", // 2s, less what Load spent before the start
		}},
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c.script, ".py"), func(t *testing.T) {
			script := abs(t, filepath.Join("testdata", c.script))
			src := "# a broken plugin\n\n" + pluginBlock(t, spi.KindFilter, "bad", script)
			src = strings.Replace(src, `env = {`, `env = { KITE_TEST_SDK = `+hclString(abs(t, sdkDir))+`,`, 1)
			path := writeHCL(t, src)
			start := time.Now()
			// Plugins start when a block that is built uses them, or all
			// at once in Check (kite check) and StartPlugins.
			_, err := stack.Check(path, stack.WithLogger(testLogger()), stack.WithPluginStartTimeout(c.timeout))
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("a broken plugin passed Check")
			}
			msg := err.Error()
			for _, w := range append([]string{
				fmt.Sprintf("%s:3:1: loading filter plugin \"bad\"", path),
				fmt.Sprintf("plugin filter/bad (%s %s)", python, script),
			}, c.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			// The start timeout bounds every case (plus the kill of the
			// plugin and the host's own work on a loaded machine).
			if elapsed > c.timeout+3*time.Second {
				t.Errorf("Check took %v, start timeout %v", elapsed, c.timeout)
			}
			t.Logf("after %v: %s", elapsed.Round(time.Millisecond), msg)
		})
	}
}

// TestPythonPluginBlockErrors: a kite.hcl block served by a Python plugin
// is checked against the schema the plugin reports, with errors at the
// attribute's file:line:col naming the script.
func TestPythonPluginBlockErrors(t *testing.T) {
	script := example(t, "header_filter.py")
	src := pluginBlock(t, spi.KindFilter, "header", script)
	lines := strings.Count(src, "\n")
	path := writeHCL(t, src+`filter "header" "tenant" {
  header = "x-tenant"
  colour = "red"
}
`)
	_, err := stack.Check(path, stack.WithLogger(testLogger()))
	if err == nil {
		t.Fatal("Check passed a block with an unknown attribute and without a required one")
	}
	msg := err.Error()
	for _, w := range []string{
		fmt.Sprintf(`%s:%d:12: unsupported attribute "colour" in filter "tenant" (served by plugin %s %s); valid attributes: count_trailer, exempt, header, value`,
			path, lines+3, python, script),
		fmt.Sprintf(`%s:%d:1: filter "tenant" (served by plugin %s %s) needs attribute "value"`, path, lines+1, python, script),
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q:\n%s", w, msg)
		}
	}
}
