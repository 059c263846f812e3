package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSummariseRealRun runs `go test -json` on a throwaway module with a
// passing, a failing and a skipping test, a subtest, a fuzz target and
// a package without tests, and checks what the summariser prints of it.
func TestSummariseRealRun(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/sum\n\ngo 1.22\n",
		"a/a_test.go": `package a

import "testing"

func TestPass(t *testing.T) { t.Log("chatter of a passing test") }
func TestFail(t *testing.T) { t.Log("context before"); t.Fatal("boom") }
func TestSkip(t *testing.T) { t.Skip("missing dependency: zookeeper") }
func TestSub(t *testing.T) {
	t.Run("one", func(t *testing.T) {})
	t.Run("two", func(t *testing.T) { t.Skipf("opt-in: %s", "KITE_X") })
}
func FuzzEcho(f *testing.F) {
	f.Add("seed")
	f.Fuzz(func(t *testing.T, s string) {})
}
`,
		"b/b_test.go": "package b\n\nimport \"testing\"\n\nfunc TestOK(t *testing.T) {}\n",
		"c/c.go":      "package c\n",
	}
	for name, src := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(src), 0o644))
	}
	cmd := exec.Command("go", "test", "-json", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	stream, err := cmd.Output()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "go test fails: package a has a failing test")

	var out bytes.Buffer
	summaryFile := filepath.Join(dir, "summary.txt")
	s, err := run(bytes.NewReader(stream), &out, summaryFile)
	require.NoError(t, err)
	got := out.String()

	assert.Equal(t, 3, s.Packages)
	assert.Equal(t, 1, s.PackagesOK)
	assert.Equal(t, 1, s.PackagesFailed)
	assert.Equal(t, 1, s.PackagesNoTests)
	// TestPass, TestFail, TestSkip, TestSub, TestSub/one, TestSub/two, FuzzEcho, FuzzEcho/seed#0, TestOK
	assert.Equal(t, 9, s.Run)
	assert.Equal(t, 1, s.Failed)
	assert.Equal(t, 2, s.Skipped)
	assert.Equal(t, 6, s.Passed)
	assert.Equal(t, 1, s.FuzzTargets)
	assert.True(t, s.failed())

	// Plain go test's view: the failing test's output, package closing lines.
	assert.Contains(t, got, "context before")
	assert.Contains(t, got, "boom")
	assert.Contains(t, got, "--- FAIL: TestFail")
	assert.Contains(t, got, "FAIL\texample.com/sum/a")
	assert.Regexp(t, `(?m)^ok  \texample.com/sum/b\t`, got)
	assert.Regexp(t, `(?m)^\?   \texample.com/sum/c\t\[no test files\]`, got)
	assert.NotContains(t, got, "chatter of a passing test", "passing tests stay quiet, as without -v")
	assert.NotContains(t, got, "=== RUN")

	// The summary block, with each skip's reason.
	assert.Contains(t, got, "test summary: 3 packages (1 ok, 1 failed, 1 without tests), 0 build failures")
	assert.Contains(t, got, "tests run: 9 (subtests included): 6 passed, 1 failed, 2 skipped")
	assert.Contains(t, got, "fuzz targets whose seed corpus ran: 1")
	assert.Contains(t, got, "FAILED example.com/sum/a TestFail")
	assert.Regexp(t, `example.com/sum/a TestSkip: a_test.go:7: missing dependency: zookeeper`, got)
	assert.Regexp(t, `example.com/sum/a TestSub/two: a_test.go:10: opt-in: KITE_X`, got)
	saved, err := os.ReadFile(summaryFile)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(saved), "test summary: 3 packages"), string(saved))
}

// TestBuildFailureAndForeignLines: a package that does not compile is
// shown with the compiler's message and counted; lines that are not
// test2json events pass through untouched.
func TestBuildFailureAndForeignLines(t *testing.T) {
	in := strings.Join([]string{
		`go: downloading example.com/x v1.0.0`,
		`{"ImportPath":"example.com/sum/d [example.com/sum/d.test]","Action":"build-output","Output":"# example.com/sum/d\n"}`,
		`{"ImportPath":"example.com/sum/d [example.com/sum/d.test]","Action":"build-output","Output":"d/d_test.go:3:1: syntax error\n"}`,
		`{"ImportPath":"example.com/sum/d [example.com/sum/d.test]","Action":"build-fail"}`,
		`{"Action":"start","Package":"example.com/sum/d"}`,
		`{"Action":"output","Package":"example.com/sum/d","Output":"FAIL\texample.com/sum/d [build failed]\n"}`,
		`{"Action":"fail","Package":"example.com/sum/d","Elapsed":0,"FailedBuild":"example.com/sum/d [example.com/sum/d.test]"}`,
	}, "\n")
	var out bytes.Buffer
	s, err := run(strings.NewReader(in), &out, "")
	require.NoError(t, err)
	assert.Equal(t, 1, s.BuildFailures)
	assert.Equal(t, 1, s.PackagesFailed)
	assert.True(t, s.failed())
	got := out.String()
	assert.Contains(t, got, "go: downloading example.com/x v1.0.0\n")
	assert.Contains(t, got, "d/d_test.go:3:1: syntax error\n")
	assert.Contains(t, got, "FAIL\texample.com/sum/d [build failed]\n")
}
