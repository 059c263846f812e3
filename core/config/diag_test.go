package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// diagCase is one broken file and the first error it must produce.
type diagCase struct {
	name    string
	src     string
	pos     string // "line:col" of the subject start
	summary string
	detail  []string // substrings of the detail
}

var diagCases = []diagCase{
	{
		name: "misspelled client attribute",
		src: `client "user" {
  timout = "1s"
}`,
		pos: "2:3", summary: "Unsupported argument",
		detail: []string{`Did you mean "timeout"?`, `Valid arguments: "balancer", "codec"`},
	},
	{
		name: "misspelled attribute in a plugin's own block",
		src: `registry "zk" "main" {
  servers = ["127.0.0.1:2181"]
  sesion_timeout = "10s"
}`,
		pos: "3:3", summary: "Unsupported argument",
		detail: []string{`Did you mean "session_timeout"?`, `Valid arguments: "acl", "labels", "retries", "root", "servers", "session_timeout".`},
	},
	{
		name: "misspelled nested block",
		src: `client "user" {
  retyr { max_attempts = 2 }
}`,
		pos: "2:3", summary: "Unsupported block type",
		detail: []string{`Did you mean "retry"?`, `Valid blocks: "breaker", "compression", "grpc", "heartbeat", "method", "pool", "retry", "tls".`},
	},
	{
		name: "misspelled top-level block",
		src: `sever "user" {
  listen = ":9000"
}`,
		pos: "1:1", summary: "Unsupported block type",
		detail: []string{`Did you mean "server"?`},
	},
	{
		name: "wrong type",
		src: `server "user" {
  listen = "127.0.0.1:9000"
  weight = "heavy"
}`,
		pos: "3:12", summary: "Incorrect attribute value type",
		detail: []string{`"weight": number required, got string`},
	},
	{
		name: "wrong type in a plugin's own block",
		src: `registry "zk" "main" {
  servers = "127.0.0.1:2181"
}`,
		pos: "2:13", summary: "Incorrect attribute value type",
		detail: []string{"list of string required"},
	},
	{
		name: "bad duration",
		src: `client "user" {
  timeout = "5x"
}`,
		pos: "2:13", summary: "Invalid duration",
		detail: []string{`"5x" is not a duration`, `"500ms"`},
	},
	{
		name: "bad duration in a plugin's own block",
		src: `registry "zk" "main" {
  servers         = ["127.0.0.1:2181"]
  session_timeout = "ten seconds"
}`,
		pos: "3:21", summary: "Invalid duration",
		detail: []string{`"session_timeout": "ten seconds" is not a duration`},
	},
	{
		name: "negative duration",
		src: `client "user" {
  connect_timeout = "-1s"
}`,
		pos: "2:21", summary: "Invalid duration",
		detail: []string{"negative"},
	},
	{
		name: "misspelled breaker attribute",
		src: `client "user" {
  breaker {
    consecutive_failure = 3
  }
}`,
		pos: "3:5", summary: "Unsupported argument",
		detail: []string{`Did you mean "consecutive_failures"?`, `"max_ejection_percent"`},
	},
	{
		name: "breaker duration not a duration",
		src: `client "user" {
  breaker {
    window = "10"
  }
}`,
		pos: "3:14", summary: "Invalid duration",
		detail: []string{`"window": "10" is not a duration`, `"500ms"`},
	},
	{
		name: "breaker negative duration",
		src: `client "user" {
  breaker { base_ejection = "-30s" }
}`,
		pos: "2:29", summary: "Invalid duration",
		detail: []string{`"base_ejection"`, "negative"},
	},
	{
		name: "breaker zero duration",
		src: `client "user" {
  breaker {
    max_ejection = "0s"
  }
}`,
		pos: "3:20", summary: "Invalid duration",
		detail: []string{`"max_ejection" must be longer than zero`},
	},
	{
		name: "breaker ratio above 1",
		src: `client "user" {
  breaker {
    failure_ratio = 1.5
  }
}`,
		pos: "3:21", summary: "Value out of range",
		detail: []string{`"failure_ratio" must be between 0 and 1`},
	},
	{
		name: "breaker negative ratio",
		src: `client "user" {
  breaker {
    failure_ratio = -0.5
  }
}`,
		pos: "3:21", summary: "Value out of range",
	},
	{
		name: "breaker percent 0",
		src: `client "user" {
  breaker {
    max_ejection_percent = 0
  }
}`,
		pos: "3:28", summary: "Value out of range",
		detail: []string{`"max_ejection_percent" must be between 1 and 100`},
	},
	{
		name: "breaker percent above 100",
		src: `client "user" {
  breaker {
    max_ejection_percent = 101
  }
}`,
		pos: "3:28", summary: "Value out of range",
	},
	{
		name: "breaker negative consecutive failures",
		src: `client "user" {
  breaker {
    consecutive_failures = -1
  }
}`,
		pos: "3:28", summary: "Value out of range",
		detail: []string{`"consecutive_failures" must be between 0 and`},
	},
	{
		name: "breaker fractional min_requests",
		src: `client "user" {
  breaker {
    min_requests = 2.5
  }
}`,
		pos: "3:20", summary: "Invalid number",
	},
	{
		name: "breaker max_ejection below base_ejection",
		src: `client "user" {
  breaker {
    base_ejection = "1m"
    max_ejection  = "30s"
  }
}`,
		pos: "4:21", summary: "Invalid breaker ejection",
		detail: []string{"max_ejection (30s) is below base_ejection (1m0s)"},
	},
	{
		name: "breaker max_ejection below the default base_ejection",
		src: `client "user" {
  breaker {
    max_ejection = "10s"
  }
}`,
		pos: "3:20", summary: "Invalid breaker ejection",
		detail: []string{"below base_ejection (30s, the default)"},
	},
	{
		name: "breaker enabled not a bool",
		src: `client "user" {
  breaker {
    enabled = "no"
  }
}`,
		pos: "3:15", summary: "Incorrect attribute value type",
		detail: []string{`"enabled": bool required`},
	},
	{
		name: "two breaker blocks",
		src: `client "user" {
  breaker { consecutive_failures = 2 }
  breaker { consecutive_failures = 3 }
}`,
		pos: "3:3", summary: "Duplicate breaker block",
	},
	{
		name: "unknown registry label",
		src: `registry "zk" "main" {
  servers = ["127.0.0.1:2181"]
}
server "user" {
  listen   = "127.0.0.1:9000"
  registry = "mian"
}`,
		pos: "6:14", summary: "Unknown registry",
		detail: []string{`No registry block is labelled "mian"`, `Did you mean "main"?`},
	},
	{
		name: "unknown implementation",
		src: `registry "zookeeper" "main" {
  servers = ["127.0.0.1:2181"]
}`,
		pos: "1:10", summary: "Unknown registry implementation",
		detail: []string{`No registry named "zookeeper"`, `Valid names: "local", "static", "zk".`},
	},
	{
		name: "missing required attribute",
		src: `server "user" {
  registry = "local"
}`,
		pos: "1:15", summary: "Missing required argument",
		detail: []string{`"listen" is required`},
	},
	{
		name: "missing required attribute in a plugin's own block",
		src: `registry "zk" "main" {
  root = "/kite"
}`,
		pos: "1:22", summary: "Missing required argument",
		detail: []string{`"servers" is required`},
	},
	{
		name: "implementation with required attributes used without a block",
		src: `client "user" {
  registry = "zk"
}`,
		pos: "2:14", summary: "Implementation needs a configuration block",
		detail: []string{"requires servers", `registry "zk" "main" { servers = … }`},
	},
	{
		name: "unknown filter, pointed at its list element",
		src: `server "user" {
  listen  = "127.0.0.1:9000"
  filters = ["recover",
             "lgo"]
}`,
		pos: "4:14", summary: "Unknown filter",
		detail: []string{`Did you mean "log"?`},
	},
	{
		name: "unknown balancer",
		src: `client "user" {
  balancer = "wieghted"
}`,
		pos: "2:14", summary: "Unknown balancer",
		detail: []string{`Did you mean "weighted"?`},
	},
	{
		name: "unknown transport",
		src: `server "user" {
  listen    = "127.0.0.1:9000"
  transport = "quic"
}`,
		pos: "3:15", summary: "Unknown transport",
		detail: []string{`No transport named "quic" is compiled in.`, `Valid names: "tcp", "tls", "unix".`},
	},
	{
		name: "bad size",
		src: `server "user" {
  listen = "127.0.0.1:9000"
  limits {
    max_frame = "4 megs"
  }
}`,
		pos: "4:17", summary: "Invalid size",
		detail: []string{`unknown unit "megs"`},
	},
	{
		name: "frame too small",
		src: `server "user" {
  listen = "127.0.0.1:9000"
  limits { max_frame = 100 }
}`,
		pos: "3:24", summary: "Value out of range",
		detail: []string{"between 1KiB and 2GiB-1"},
	},
	{
		name: "body memory too small",
		src: `server "user" {
  listen = "127.0.0.1:9000"
  limits { body_memory = "64KiB" }
}`,
		pos: "3:26", summary: "Value out of range",
		detail: []string{`"body_memory" must be at least 1MiB`},
	},
	{
		name: "peer share out of range",
		src: `server "user" {
  listen = "127.0.0.1:9000"
  limits {
    max_peer_share = 1.5
  }
}`,
		pos: "4:22", summary: "Value out of range",
		detail: []string{`"max_peer_share" must be between 0 and 1`},
	},
	{
		name: "peer share zero",
		src: `server "user" {
  listen = "127.0.0.1:9000"
  limits { max_peer_share = 0 }
}`,
		pos: "3:29", summary: "Value out of range",
		detail: []string{`"max_peer_share" must be above 0`},
	},
	{
		name: "metadata larger than frame",
		src: `server "user" {
  listen = "127.0.0.1:9000"
  limits {
    max_frame    = "64KiB"
    max_metadata = "1MiB"
  }
}`,
		pos: "5:20", summary: "Inconsistent limits",
		detail: []string{"max_metadata (1MiB) must not exceed max_frame (64KiB)"},
	},
	{
		name: "fractional integer",
		src: `client "user" {
  pool { conns_per_endpoint = 1.5 }
}`,
		pos: "2:31", summary: "Invalid number",
	},
	{
		name: "retry budget out of range",
		src: `client "user" {
  retry { budget = 2 }
}`,
		pos: "2:20", summary: "Value out of range",
		detail: []string{`"budget" must be between 0 and 1`},
	},
	{
		name: "bad backoff",
		src: `client "user" {
  retry { backoff = "1s..10ms" }
}`,
		pos: "2:21", summary: "Invalid backoff",
		detail: []string{"maximum is below the minimum"},
	},
	{
		name: "unknown retry code",
		src: `client "user" {
  retry { codes = ["Unavailable", "Unavaliable"] }
}`,
		pos: "2:35", summary: "Unknown status code",
		detail: []string{`Did you mean "Unavailable"?`},
	},
	{
		name: "target and registry",
		src: `client "user" {
  target   = "127.0.0.1:9000"
  registry = "local"
}`,
		pos: "3:14", summary: "Conflicting target and registry",
	},
	{
		name: "duplicate registry label",
		src: `registry "local" "main" {}
registry "static" "main" {}`,
		pos: "2:19", summary: "Duplicate registry label",
		detail: []string{"already declared at <input>.hcl:1,1-24"},
	},
	{
		name: "duplicate singleton block",
		src: `client "user" {
  pool { conns_per_endpoint = 1 }
  pool { conns_per_endpoint = 2 }
}`,
		pos: "3:3", summary: "Duplicate pool block",
	},
	{
		name: "bad method name",
		src: `client "user" {
  method "Get" { timeout = "1s" }
}`,
		pos: "2:10", summary: "Invalid method name",
		detail: []string{`write "Service.Method"`},
	},
	{
		name: "plugin with bad checksum",
		src: `plugin "registry" "nacos" {
  path   = "./bin/kite-registry-nacos"
  sha256 = "abc123"
}`,
		pos: "3:12", summary: "Invalid sha256",
		detail: []string{"64 hexadecimal characters", "sha256sum kite-registry-nacos", "got 6 characters"},
	},
	{
		name: "plugin without checksum",
		src: `plugin "registry" "nacos" {
  path = "./bin/kite-registry-nacos"
}`,
		pos: "1:27", summary: "Missing required argument",
		detail: []string{`"sha256" is required`},
	},
	{
		name: "plugin of an unknown kind",
		src: `plugin "registy" "nacos" {
  path   = "./bin/x"
  sha256 = "` + strings.Repeat("ab", 32) + `"
}`,
		pos: "1:8", summary: "Unknown plugin kind",
		detail: []string{`Did you mean "registry"?`},
	},
	{
		name: "transport plugin",
		src: `plugin "transport" "quic" {
  path   = "./bin/x"
  sha256 = "` + strings.Repeat("ab", 32) + `"
}`,
		pos: "1:8", summary: "Transport cannot be a plugin",
	},
	{
		name: "tls block with a plain transport",
		src: `server "user" {
  listen    = "127.0.0.1:9443"
  transport = "tcp"
  tls {
    cert = "server.pem"
    key  = "server.key"
  }
}`,
		pos: "3:15", summary: "TLS needs the tls transport",
	},
	{
		name: "write_timeout negative",
		src: `server "user" {
  listen = "127.0.0.1:9443"
  limits { write_timeout = "-5s" }
}`,
		pos: "3:28", summary: "Invalid duration",
		detail: []string{`"write_timeout"`, `"-5s" is negative`},
	},
	{
		name: "handshake_timeout zero",
		src: `server "user" {
  listen = "127.0.0.1:9443"
  limits { handshake_timeout = "0s" }
}`,
		pos: "3:32", summary: "Invalid duration",
		detail: []string{`"handshake_timeout" must be longer than zero`},
	},
	{
		name: "tls min_version not offered",
		src: `server "user" {
  listen = "127.0.0.1:9443"
  tls {
    cert        = "server.pem"
    key         = "server.key"
    min_version = "1.1"
  }
}`,
		pos: "6:19", summary: "Invalid min_version",
		detail: []string{`"1.1" is not a TLS version Kite offers`},
	},
	{
		name: "client tls min_version misspelled",
		src: `client "user" {
  target = ["127.0.0.1:9443"]
  tls { min_version = "TLS1.3" }
}`,
		pos: "3:23", summary: "Invalid min_version",
	},
	{
		name: "client_auth without a CA",
		src: `server "user" {
  listen = "127.0.0.1:9443"
  tls {
    cert        = "server.pem"
    key         = "server.key"
    client_auth = "require_and_verify"
  }
}`,
		pos: "6:19", summary: "Missing ca",
	},
	{
		name: "env unset",
		src: `filter "auth" "token" {
  token = env("KITE_TEST_SURELY_UNSET")
}`,
		pos: "2:16", summary: "Invalid function argument",
		detail: []string{"KITE_TEST_SURELY_UNSET is not set", `env("KITE_TEST_SURELY_UNSET", "…")`},
	},
	{
		name: "syntax error",
		src: `server "user" {
  listen = "127.0.0.1:9000
}`,
		pos: "2:27", summary: "Invalid multi-line string",
	},
}

func TestDiagnostics(t *testing.T) {
	cat := testCatalog()
	for _, tc := range diagCases {
		t.Run(tc.name, func(t *testing.T) {
			f, diags := Parse([]byte(tc.src), "<input>.hcl", cat)
			require.True(t, diags.HasErrors(), "want an error, got none")
			assert.Nil(t, f, "a file with errors must not be returned")
			d := firstError(diags)
			got := fmt.Sprintf("%d:%d", d.Subject.Start.Line, d.Subject.Start.Column)
			assert.Equal(t, tc.pos, got, "position of %q (all: %v)", d.Summary, diags)
			assert.Equal(t, tc.summary, d.Summary, "detail: %s", d.Detail)
			for _, s := range tc.detail {
				assert.Contains(t, d.Detail, s)
			}
			// The error form names the position first, for any caller's log.
			err := DiagnosticsError(diags, Sources("<input>.hcl", []byte(tc.src)))
			assert.True(t, strings.HasPrefix(err.Error(), "<input>.hcl:"+tc.pos+": "), err.Error())
		})
	}
}

func firstError(diags hcl.Diagnostics) *hcl.Diagnostic {
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			return d
		}
	}
	return nil
}

// TestGoldenFormat prints a file with several typos through
// FormatDiagnostics and compares with testdata/typos.golden (go test
// -update rewrites it): the exact text `kite check` shows.
func TestGoldenFormat(t *testing.T) {
	path := filepath.Join("testdata", "typos.hcl")
	_, err := Load(path, testCatalog())
	require.Error(t, err)
	var ce *Error
	require.True(t, errors.As(err, &ce))
	var b strings.Builder
	require.NoError(t, ce.Format(&b))
	golden := filepath.Join("testdata", "typos.golden")
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(b.String()), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	assert.Equal(t, string(want), b.String())
	assert.True(t, strings.HasPrefix(ce.Error(), "testdata/typos.hcl:"), ce.Error())
	assert.Contains(t, ce.Error(), "more errors")
}

func TestFormatWithoutSources(t *testing.T) {
	_, diags := Parse([]byte("client \"x\" {\n  timout = 1\n}\n"), "a.hcl", testCatalog())
	var b strings.Builder
	require.NoError(t, FormatDiagnostics(&b, diags, nil))
	assert.True(t, strings.HasPrefix(b.String(), "a.hcl:2:3: error: Unsupported argument\n"), b.String())
	assert.NotContains(t, b.String(), "^")
}

func TestFormatCaretAlignsAfterTabsAndUnicode(t *testing.T) {
	src := "client \"ü\" {\n\ttimout = \"1s\" # é\n}\n"
	_, diags := Parse([]byte(src), "a.hcl", testCatalog())
	var b strings.Builder
	require.NoError(t, FormatDiagnostics(&b, diags, Sources("a.hcl", []byte(src))))
	assert.Contains(t, b.String(), "  2 | \ttimout = \"1s\" # é\n    | \t^^^^^^\n")
}
