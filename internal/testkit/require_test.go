package testkit

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// recorder is a testing.TB that records how a test would end instead of
// ending it, so the helpers' choice between skip and fail can be checked
// from the outside.
type recorder struct {
	testing.TB
	failed, skipped string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }

func TestMissingFailsUnderCI(t *testing.T) {
	for _, tc := range []struct {
		ci       string
		wantFail bool
	}{{"true", true}, {"1", true}, {"", false}, {"false", false}} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recorder{TB: t}
			Missing(r, "protoc not found (%s)", "apt-get install protobuf-compiler")
			if tc.wantFail {
				assert.Contains(t, r.failed, "protoc not found (apt-get install protobuf-compiler)")
				assert.Contains(t, r.failed, "CI=true")
				assert.Empty(t, r.skipped, "a failed test is not also skipped")
			} else {
				assert.Equal(t, "missing dependency: protoc not found (apt-get install protobuf-compiler)", r.skipped)
				assert.Empty(t, r.failed)
			}
		})
	}
}

func TestEnvAndTool(t *testing.T) {
	t.Setenv("CI", "true")
	t.Setenv("KITE_TESTKIT_SET", "127.0.0.1:1")
	r := &recorder{TB: t}
	assert.Equal(t, "127.0.0.1:1", Env(r, "KITE_TESTKIT_SET", "hint"))
	assert.Empty(t, r.failed+r.skipped)

	t.Setenv("KITE_TESTKIT_UNSET", "")
	Env(r, "KITE_TESTKIT_UNSET", "start it with X")
	assert.Contains(t, r.failed, "KITE_TESTKIT_UNSET is not set: start it with X")

	r = &recorder{TB: t}
	assert.NotEmpty(t, Tool(r, "sh", "hint"))
	assert.Empty(t, r.failed+r.skipped)
	Tool(r, "kite-testkit-no-such-tool", "install it with Y")
	assert.Contains(t, r.failed, "kite-testkit-no-such-tool not found on PATH: install it with Y")
}

func TestOptInSkipsEvenUnderCI(t *testing.T) {
	t.Setenv("CI", "true")
	t.Setenv("KITE_TESTKIT_OPTIN", "")
	r := &recorder{TB: t}
	OptIn(r, "KITE_TESTKIT_OPTIN", "a real Nacos")
	assert.Empty(t, r.failed)
	assert.True(t, strings.HasPrefix(r.skipped, "opt-in: KITE_TESTKIT_OPTIN is not set"), r.skipped)

	t.Setenv("KITE_TESTKIT_OPTIN", "127.0.0.1:8848")
	r = &recorder{TB: t}
	assert.Equal(t, "127.0.0.1:8848", OptIn(r, "KITE_TESTKIT_OPTIN", "a real Nacos"))
	assert.Empty(t, r.failed+r.skipped)
}
