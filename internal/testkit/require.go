package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// InCI reports whether the tests run under CI: the CI environment
// variable holds a true value ("true", "1"), as GitHub Actions, GitLab CI
// and .ci/run set it.
func InCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// Missing ends a test that cannot run because a server, binary or tool
// it needs is absent. Outside CI the test is skipped with the reason; under
// CI=true it fails, because CI (scripts/test.sh, scripts/services.sh)
// installs everything the tests need and a skip there would hide a test
// that never ran. why says what is missing and how to get it.
//
// Every skip for a missing dependency goes through here (or Env and
// Tool); tests for servers that cannot be installed on the build machines
// use OptIn instead.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("missing dependency under CI=true (CI installs every test dependency; a skip would hide this test): %s", why)
		return
	}
	t.Skipf("missing dependency: %s", why)
}

// Env returns the value of the environment variable name (the address
// of a test server, say), or ends the test through Missing when it is
// unset; hint says how to provide it.
func Env(t testing.TB, name, hint string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Missing(t, "%s is not set: %s", name, hint)
	}
	return v
}

// Tool returns the path of the executable name found on PATH, or ends
// the test through Missing; hint says how to install it.
func Tool(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not found on PATH: %s", name, hint)
	}
	return p
}

// OptIn returns the value of the environment variable name, or skips the
// test — also under CI — when it is unset. It is for tests against
// servers that cannot be installed on the build machines (a real Nacos,
// say): they run when a developer points them at one. Every opt-in
// variable is listed in README.md ("Opt-in tests"); a new one goes there.
func OptIn(t testing.TB, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Skipf("opt-in: %s is not set (%s; see README.md, Opt-in tests)", name, what)
	}
	return v
}
