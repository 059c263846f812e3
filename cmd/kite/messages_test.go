package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The CLI's own messages, checked word for word.

func TestTimeoutFlagMustBePositive(t *testing.T) {
	dir, path, _ := cliSetup(t)
	for _, tc := range []struct{ cmd, flag, shown string }{
		{"call", "0", "0s"},
		{"call", "-1s", "-1s"},
		{"bench", "0", "0s"},
	} {
		r := kite(t, dir, nil, tc.cmd, "-f", path, "-timeout", tc.flag, "echo", "Echo.Echo", `{"text":"x"}`)
		assert.Equal(t, 2, r.code, "%s -timeout %s: %s", tc.cmd, tc.flag, r.stderr)
		assert.Empty(t, r.stdout)
		assert.Equal(t, "kite "+tc.cmd+": -timeout "+tc.shown+": want a positive duration such as 500ms (leave it out to use the client block's timeout)\n", r.stderr)
	}
}

// A client block with the log filter must not make the CLI report a
// failed call twice (the filter's WARN line and the CLI's own line).
func TestFailedCallIsReportedOnce(t *testing.T) {
	dir, path, _ := cliSetup(t)
	src := strings.Replace(mustRead(t, path), "client \"echo\" {\n", "client \"echo\" {\n  filters = [\"recover\", \"log\"]\n", 1)
	require.Contains(t, src, `filters = ["recover", "log"]`)
	logged := writeFile(t, dir, "logged.hcl", src)
	r := kite(t, dir, nil, "call", "-f", logged, "echo", "Echo.Fail", `{"text": "thing"}`)
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "kite call: NotFound: no thing\n", r.stderr)

	// -v shows the filter's line too.
	r = kite(t, dir, nil, "call", "-v", "-f", logged, "echo", "Echo.Fail", `{"text": "thing"}`)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "code=NotFound")
	assert.True(t, strings.HasSuffix(r.stderr, "kite call: NotFound: no thing\n"), r.stderr)
}

// A registry that cannot answer: the table row says so in a few words and
// the error goes to stderr wrapped, not stretched across one table row.
func TestRegistryLsWrapsLongErrors(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "kite.hcl", `registry "etcd" "e" {
  endpoints = ["127.0.0.1:1"]
}
client "echo" {
  registry = "e"
}
`)
	r := kite(t, dir, nil, "registry", "ls", "-f", path, "-timeout", "200ms")
	assert.Equal(t, 1, r.code)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	require.Len(t, lines, 3, r.stdout)
	assert.Equal(t, "echo     (error, see stderr)", strings.TrimRight(lines[2], " "))
	assert.True(t, strings.HasPrefix(r.stderr, `kite registry ls: resolving "echo" in registry "e": `), r.stderr)
	for _, l := range strings.Split(strings.TrimRight(r.stderr, "\n"), "\n") {
		assert.LessOrEqual(t, len(l), 100, "stderr line %q", l)
	}
}

func TestWrapText(t *testing.T) {
	assert.Equal(t, "a b\n  c\n", wrapText("a b c", 3, "  "))
	assert.Equal(t, "short\n", wrapText("short", 80, "  "))
	assert.Equal(t, "averyveryverylongword\n  x\n", wrapText("averyveryverylongword x", 5, "  "))
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
