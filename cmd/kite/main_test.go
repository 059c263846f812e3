package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// kiteBin is the kite binary built once for the subprocess tests.
var kiteBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kite-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kiteBin = filepath.Join(dir, "kite")
	goTool, err := exec.LookPath("go")
	if err == nil {
		out, berr := exec.Command(goTool, "build", "-o", kiteBin, ".").CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("go build: %v\n%s", berr, out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "building kite:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

type result struct {
	code           int
	stdout, stderr string
}

// kite runs the built binary in dir with env added to the environment.
func kite(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(kiteBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code, out.String(), errb.String()}
}

func writeFile(t *testing.T, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(src), 0o644))
	return p
}

func TestCheckTypo(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "typo.hcl", `registry "static" "main" {
  addrs = ["127.0.0.1:9000"]
  servce = "echo"
}
balancer "round_robin" "rr" {}
`)
	r := kite(t, dir, nil, "check", "-f", "typo.hcl")
	assert.Equal(t, 1, r.code, "stderr: %s", r.stderr)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "typo.hcl:3:3: error: Unsupported argument\n")
	assert.Contains(t, r.stderr, "  3 |   servce = \"echo\"\n    |   ^^^^^^\n")
	assert.Contains(t, r.stderr, `Did you mean "service"?`)
	assert.True(t, strings.HasSuffix(r.stderr, "typo.hcl: 1 error\n"), r.stderr)
}

func TestCheckValid(t *testing.T) {
	dir := t.TempDir()
	// Only implementations linked into the binary (see plugins.go), each
	// body checked against the schema the real plugin publishes.
	writeFile(t, dir, "kite.hcl", `registry "static" "main" { addrs = ["127.0.0.1:9000"] }
registry "zk" "zk" {
  servers         = ["127.0.0.1:2181"]
  session_timeout = "10s"
}
balancer "round_robin" "rr" {}
compressor "zstd" "small" { level = "best" }
`)
	r := kite(t, dir, nil, "check")
	assert.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Equal(t, "kite.hcl: ok (2 registries, 1 balancer, 1 compressor)\n", r.stdout)
	assert.Empty(t, r.stderr)

	// The same through $KITE_CONFIG and as an argument.
	sub := filepath.Join(dir, "sub")
	require.NoError(t, os.Mkdir(sub, 0o755))
	r = kite(t, sub, []string{"KITE_CONFIG=../kite.hcl"}, "check")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "../kite.hcl: ok (2 registries, 1 balancer, 1 compressor)\n", r.stdout)
	r = kite(t, sub, nil, "check", "../kite.hcl")
	assert.Equal(t, 0, r.code, r.stderr)
}

// TestCheckRepoKiteHCL checks the demo stack: every implementation the
// repository's kite.hcl names (local registry, recover and log filters,
// weighted balancer, json codec, tcp transport) is linked into cmd/kite,
// so `kite check kite.hcl` must pass with no error at all.
func TestCheckRepoKiteHCL(t *testing.T) {
	r := kite(t, filepath.Join("..", ".."), nil, "check", "-f", "kite.hcl")
	require.Equal(t, 0, r.code, "kite check kite.hcl:\n%s", r.stderr)
	assert.Empty(t, r.stderr)
	assert.True(t, strings.HasPrefix(r.stdout, "kite.hcl: ok ("), r.stdout)
}

// A real plugin's schema drives the errors: required attributes, names
// and durations are checked at their positions.
func TestCheckAgainstRealSchema(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "kite.hcl", `registry "zk" "main" {
  server          = ["127.0.0.1:2181"]
  session_timeout = "10 seconds"
}
`)
	r := kite(t, dir, nil, "check")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, `kite.hcl:1:22: error: Missing required argument`)
	assert.Contains(t, r.stderr, `kite.hcl:2:3: error: Unsupported argument`)
	assert.Contains(t, r.stderr, `Did you mean "servers"?`)
	assert.Contains(t, r.stderr, `kite.hcl:3:21: error: Invalid duration`)
	assert.Contains(t, r.stderr, "kite.hcl: 3 errors\n")
}

func TestCheckMissingFile(t *testing.T) {
	r := kite(t, t.TempDir(), nil, "check", "-f", "nope.hcl")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "nope.hcl")
	assert.Contains(t, r.stderr, "no such file")
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{nil, 2, "", "Usage: kite <command>"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"help"}, 0, "check      validate a kite.hcl", ""},
		{[]string{"--help"}, 0, "Usage: kite <command>", ""},
		{[]string{"help", "check"}, 0, "Usage: kite check", ""},
		{[]string{"help", "nope"}, 2, "", `unknown command "nope"`},
		{[]string{"check", "--help"}, 0, "Exit status: 0 valid, 1 invalid, 2 usage error.", ""},
		{[]string{"check", "-h"}, 0, "Usage: kite check", ""},
		{[]string{"check", "--bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"check", "a.hcl", "b.hcl"}, 2, "", "one file at a time"},
		{[]string{"check", "-f", "a.hcl", "b.hcl"}, 2, "", "either with -f or as an argument"},
	} {
		r := kite(t, dir, nil, tc.args...)
		assert.Equal(t, tc.code, r.code, "%v: %s%s", tc.args, r.stdout, r.stderr)
		if tc.stdout != "" {
			assert.Contains(t, r.stdout, tc.stdout, tc.args)
		}
		if tc.stderr != "" {
			assert.Contains(t, r.stderr, tc.stderr, tc.args)
		}
	}
}

// TestHelpPrintedOnce: -h prints the usage on stdout only. flag would
// also print it on the error output when it meets -h itself, which
// parseFlags answers before parsing.
func TestHelpPrintedOnce(t *testing.T) {
	dir := t.TempDir()
	for _, cmd := range []string{"check", "gen", "call", "bench", "plugins"} {
		r := kite(t, dir, nil, cmd, "-h")
		assert.Equal(t, 0, r.code, cmd)
		assert.Contains(t, r.stdout, "Usage: kite "+cmd, cmd)
		assert.Empty(t, r.stderr, cmd)
	}
}
