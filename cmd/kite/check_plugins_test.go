package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var denylist struct {
	once      sync.Once
	path, sum string
	err       error
}

// denylistPlugin builds examples/custom-plugin's filter plugin once.
func denylistPlugin(t *testing.T) (path, sum string) {
	t.Helper()
	denylist.once.Do(func() {
		// Beside the kite binary: TestMain removes that directory.
		denylist.path = filepath.Join(filepath.Dir(kiteBin), "kite-filter-denylist")
		cmd := exec.Command("go", "build", "-o", denylist.path, "./examples/custom-plugin/cmd/kite-filter-denylist")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			denylist.err = err
			t.Logf("%s", out)
			return
		}
		b, err := os.ReadFile(denylist.path)
		if err != nil {
			denylist.err = err
			return
		}
		h := sha256.Sum256(b)
		denylist.sum = hex.EncodeToString(h[:])
	})
	require.NoError(t, denylist.err)
	return denylist.path, denylist.sum
}

// kite check catches what startup would: a missing plugin executable, a
// sha256 that does not match, and a typo inside a block the plugin
// serves — each at the file:line:col of the attribute at fault. -syntax
// checks the file alone.
func TestCheckIsAsStrictAsStartup(t *testing.T) {
	bin, sum := denylistPlugin(t)
	dir := t.TempDir()
	const tmpl = `plugin "filter" "denylist" {
  path   = "PATH"
  sha256 = "SUM"
}

filter "denylist" "policy" {
  ATTR = ["Admin.Drop"]
}
`
	write := func(name, path, sum, attr string) string {
		r := strings.NewReplacer("PATH", path, "SUM", sum, "ATTR", attr)
		return writeFile(t, dir, name, r.Replace(tmpl))
	}

	ok := write("ok.hcl", bin, sum, "methods")
	r := kite(t, dir, nil, "check", ok)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, ok+": ok (1 plugin, 1 filter)\n", r.stdout)

	missing := write("missing.hcl", filepath.Join(dir, "nosuch-plugin"), sum, "methods")
	r = kite(t, dir, nil, "check", missing)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, missing+":2:12: loading filter plugin \"denylist\": ", "points at path")
	assert.Contains(t, r.stderr, "no such file or directory")

	wrong := write("wrong.hcl", bin, strings.Repeat("ab", 32), "methods")
	r = kite(t, dir, nil, "check", wrong)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, wrong+":3:12: loading filter plugin \"denylist\": ", "points at sha256")
	assert.Contains(t, r.stderr, "but the declaration expects "+strings.Repeat("ab", 32))

	typo := write("typo.hcl", bin, sum, "methds")
	r = kite(t, dir, nil, "check", typo)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, typo+":7:12: unsupported attribute")
	assert.Contains(t, r.stderr, `"methds"`)

	// -syntax: the file alone is fine in all three.
	for _, p := range []string{missing, wrong, typo} {
		r = kite(t, dir, nil, "check", "-syntax", p)
		assert.Equal(t, 0, r.code, "%s: %s", p, r.stderr)
	}
}
