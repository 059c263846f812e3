package config

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/spi"
)

func mustParse(t *testing.T, src string) *File {
	t.Helper()
	f, diags := Parse([]byte(src), "test.hcl", testCatalog())
	if diags.HasErrors() {
		var b strings.Builder
		_ = FormatDiagnostics(&b, diags, Sources("test.hcl", []byte(src)))
		t.Fatalf("unexpected errors:\n%s", b.String())
	}
	require.NotNil(t, f)
	return f
}

func TestRepoKiteHCL(t *testing.T) {
	f, err := Load(filepath.Join("..", "..", "kite.hcl"), testCatalog())
	require.NoError(t, err)
	assert.Empty(t, f.Warnings)

	require.Len(t, f.Registries, 1)
	assert.Equal(t, "local", f.Registries[0].Impl)
	assert.JSONEq(t, `{}`, string(f.Registries[0].Config))

	s, ok := f.Server("echo")
	require.True(t, ok)
	assert.Equal(t, "127.0.0.1:9000", s.Listen)
	assert.Equal(t, []string{"recover", "log"}, s.Filters)
	assert.Equal(t, "local", s.Registry)
	assert.EqualValues(t, 4<<20, s.Limits.MaxFrame)

	c, ok := f.Client("echo")
	require.True(t, ok)
	assert.Equal(t, "weighted", c.Balancer)
	assert.Equal(t, 500*time.Millisecond, c.Timeout)
	assert.Equal(t, Retry{MaxAttempts: 3, BackoffMin: 10 * time.Millisecond, BackoffMax: time.Second,
		Budget: 0.1}, c.Retry)
	assert.Equal(t, Pool{ConnsPerEndpoint: 2, IdleTimeout: time.Minute}, c.Pool)
	m := c.Method("Echo.Say")
	assert.True(t, m.Idempotent)
	assert.Equal(t, c.Timeout, m.Timeout)

	reg, ok := f.Component(spi.KindRegistry, s.Registry)
	require.True(t, ok)
	assert.Same(t, f.Registries[0], reg)
}

func TestDefaults(t *testing.T) {
	f := mustParse(t, `
server "user" { listen = "127.0.0.1:0" }
client "user" {}
`)
	s := f.Servers[0]
	want := DefaultServerConfig("user")
	want.Listen = "127.0.0.1:0"
	want.DeclRange, want.Ranges = s.DeclRange, s.Ranges
	assert.Equal(t, want, s)
	assert.Equal(t, "user", s.ServiceName)
	assert.Equal(t, "tcp", s.Transport)
	assert.Equal(t, "local", s.Registry)
	assert.Equal(t, "auto", s.Codec)
	assert.Equal(t, 100, s.Weight)
	assert.Equal(t, 10*time.Second, s.ShutdownTimeout)
	assert.Equal(t, Limits{MaxConcurrency: 10000, MaxConnConcurrency: 1000, MaxFrame: 4 << 20, MaxMetadata: 64 << 10, MaxConns: 0,
		IdleTimeout: 5 * time.Minute, HandshakeTimeout: 10 * time.Second,
		StreamIdleTimeout: time.Minute, BodyMemory: 256 << 20, MaxPeerShare: 0.5, WriteTimeout: 10 * time.Second}, s.Limits)
	assert.Nil(t, s.Compression)
	assert.Nil(t, s.TLS)

	c := f.Clients[0]
	wantC := DefaultClientConfig("user")
	wantC.DeclRange, wantC.Ranges = c.DeclRange, c.Ranges
	assert.Equal(t, wantC, c)
	assert.Equal(t, "user", c.Service)
	assert.Equal(t, "local", c.Registry)
	assert.Equal(t, "weighted", c.Balancer)
	assert.Equal(t, time.Duration(0), c.Timeout, "no default deadline: the caller's context governs")
	assert.Equal(t, 2*time.Second, c.ConnectTimeout)
	assert.Equal(t, Heartbeat{Interval: 10 * time.Second, Timeout: 3 * time.Second}, c.Heartbeat)
	assert.Equal(t, Pool{ConnsPerEndpoint: 1, IdleTimeout: 5 * time.Minute}, c.Pool)
	assert.Equal(t, 3, c.Retry.MaxAttempts)
	assert.Nil(t, c.Retry.Codes, "every code the retry rule allows")
	assert.Equal(t, Breaker{Enabled: true, ConsecutiveFailures: 5, FailureRatio: 0.5, Window: 10 * time.Second,
		MinRequests: 20, BaseEjection: 30 * time.Second, MaxEjection: 5 * time.Minute,
		MaxEjectionPercent: 50, HalfOpenProbes: 1}, c.Breaker)

	// A method without a block inherits the client's settings.
	assert.Equal(t, MethodConfig{Name: "User.Get", Timeout: 0, Retry: c.Retry}, c.Method("User.Get"))
}

// Explicit zeros mean what they say; only absent attributes get defaults.
func TestExplicitZerosKept(t *testing.T) {
	f := mustParse(t, `
server "user" {
  listen = "127.0.0.1:0"
  weight = 0
  limits {
    max_concurrency = 0
    idle_timeout    = "0s"
  }
}
client "user" {
  timeout = "0s"
  heartbeat { interval = "0s" }
  pool { idle_timeout = 0 == 0 ? "0s" : "1s" }
  retry { budget = 0 }
}
`)
	s := f.Servers[0]
	assert.Equal(t, 0, s.Weight)
	assert.Equal(t, 0, s.Limits.MaxConcurrency)
	assert.Equal(t, time.Duration(0), s.Limits.IdleTimeout)
	c := f.Clients[0]
	assert.Equal(t, time.Duration(0), c.Timeout)
	assert.Equal(t, time.Duration(0), c.Heartbeat.Interval)
	assert.Equal(t, 3*time.Second, c.Heartbeat.Timeout)
	assert.Equal(t, time.Duration(0), c.Pool.IdleTimeout)
	assert.Equal(t, 0.0, c.Retry.Budget)
	assert.Equal(t, 3, c.Retry.MaxAttempts)
}

func TestFullServerAndClient(t *testing.T) {
	dir := t.TempDir()
	src := `
compressor "zstd" "fast" { level = 1 }
filter "auth" "secret" { token = "s3cr3t" }
server "user" {
  listen       = "0.0.0.0:9443"
  advertise    = "10.0.0.5:9443"
  registry     = "none"
  codec        = "proto"
  filters      = ["recover", "secret"]
  service_name = "users"
  weight       = 50
  version      = "1.2.0"
  zone         = "eu-1"
  tags         = ["canary"]
  metadata     = { team = "core" }
  shutdown_timeout = "30s"
  limits {
    max_concurrency = 100
    max_frame       = "1MiB"
    max_metadata    = 4096
    max_conns       = 500
    idle_timeout    = "1m"
    stream_idle_timeout = "30s"
    body_memory     = "64MiB"
    max_peer_share  = 0.25
    write_timeout   = "3s"
    max_conn_concurrency = 10
    handshake_timeout    = "2s"
  }
  compression {
    name      = "fast"
    threshold = "2KiB"
  }
  tls {
    cert        = "certs/server.pem"
    key         = "/abs/server.key"
    ca          = "certs/ca.pem"
    min_version = "1.2"
  }
}
client "user" {
  service         = "users"
  target          = ["10.0.0.5:9443", "10.0.0.6:9443"]
  balancer        = "round_robin"
  codec           = "proto"
  timeout         = "250ms"
  connect_timeout = "500ms"
  filters         = ["secret"]
  retry {
    max_attempts = 5
    backoff      = "5ms"
    budget       = 0.2
    codes        = ["Unavailable", "ResourceExhausted"]
  }
  pool { conns_per_endpoint = 4 }
  heartbeat {
    interval = "5s"
    timeout  = "1s"
  }
  compression { name = "snappy" }
  tls {
    ca          = "certs/ca.pem"
    server_name = "users.internal"
  }
  method "User.Get" {
    timeout    = "100ms"
    idempotent = true
    retry { max_attempts = 2 }
  }
  method "User.Delete" { timeout = "2s" }
}
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kite.hcl"), []byte(src), 0o644))
	f, err := Load(filepath.Join(dir, "kite.hcl"), testCatalog())
	require.NoError(t, err)

	s := f.Servers[0]
	assert.Equal(t, "10.0.0.5:9443", s.Advertise)
	assert.Equal(t, NoRegistry, s.Registry)
	assert.Equal(t, "tls", s.Transport, "a tls block implies the tls transport")
	assert.Equal(t, []string{"canary"}, s.Tags)
	assert.Equal(t, map[string]string{"team": "core"}, s.Metadata)
	assert.Equal(t, 30*time.Second, s.ShutdownTimeout)
	assert.Equal(t, Limits{MaxConcurrency: 100, MaxConnConcurrency: 10, MaxFrame: 1 << 20, MaxMetadata: 4096, MaxConns: 500,
		IdleTimeout: time.Minute, HandshakeTimeout: 2 * time.Second,
		StreamIdleTimeout: 30 * time.Second, BodyMemory: 64 << 20, MaxPeerShare: 0.25, WriteTimeout: 3 * time.Second}, s.Limits)
	assert.Equal(t, &Compression{Name: "fast", Threshold: 2048}, s.Compression)
	assert.Equal(t, &ServerTLS{
		Cert:       filepath.Join(dir, "certs/server.pem"),
		Key:        "/abs/server.key",
		CA:         filepath.Join(dir, "certs/ca.pem"),
		ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: "1.2",
	}, s.TLS, "relative paths resolve against the file's directory; a CA asks for mTLS")
	_, ok := f.Component(spi.KindRegistry, s.Registry)
	assert.False(t, ok)

	secret, ok := f.Component(spi.KindFilter, "secret")
	require.True(t, ok)
	assert.JSONEq(t, `{"token":"s3cr3t"}`, string(secret.Config))
	rec, ok := f.Component(spi.KindFilter, "recover")
	require.True(t, ok)
	assert.True(t, rec.Implicit)
	assert.Equal(t, "recover", rec.Impl)

	c := f.Clients[0]
	assert.Equal(t, "users", c.Service)
	assert.Equal(t, []string{"10.0.0.5:9443", "10.0.0.6:9443"}, c.Target)
	assert.Equal(t, "", c.Registry, "a target list needs no registry")
	assert.Equal(t, "tls", c.Transport)
	assert.Equal(t, Retry{MaxAttempts: 5, BackoffMin: 5 * time.Millisecond, BackoffMax: 5 * time.Millisecond,
		Budget: 0.2, Codes: []spi.Code{spi.Unavailable, spi.ResourceExhausted}}, c.Retry)
	assert.Equal(t, Pool{ConnsPerEndpoint: 4, IdleTimeout: DefaultPoolIdle}, c.Pool)
	assert.Equal(t, &Compression{Name: "snappy", Threshold: 1024}, c.Compression)
	assert.Equal(t, &ClientTLS{CA: filepath.Join(dir, "certs/ca.pem"), ServerName: "users.internal"}, c.TLS)

	get := c.Method("User.Get")
	assert.Equal(t, 100*time.Millisecond, get.Timeout)
	assert.True(t, get.Idempotent)
	wantRetry := c.Retry
	wantRetry.MaxAttempts = 2
	assert.Equal(t, wantRetry, get.Retry, "a method's retry block overrides only what it sets")
	del := c.Method("User.Delete")
	assert.Equal(t, 2*time.Second, del.Timeout)
	assert.False(t, del.Idempotent)
	assert.Equal(t, c.Retry, del.Retry)

	// Ranges let the core point back into the file at run time.
	r := s.Ranges["limits.max_frame"]
	assert.Equal(t, filepath.Join(dir, "kite.hcl"), r.Filename)
	assert.Equal(t, 19, r.Start.Line)
}

func TestBreakerBlock(t *testing.T) {
	f := mustParse(t, `
client "all" {
  breaker {
    consecutive_failures = 3
    failure_ratio        = 0.25
    window               = "30s"
    min_requests         = 40
    base_ejection        = "5s"
    max_ejection         = "2m"
    max_ejection_percent = 100
    half_open_probes     = 2
  }
}
client "some" {
  breaker {
    failure_ratio = 1
    base_ejection = "10m"
  }
}
client "triggers_off" {
  breaker {
    consecutive_failures = 0
    failure_ratio        = 0
  }
}
client "off" {
  breaker { enabled = false }
}
client "null" {
  breaker { window = null }
}
`)
	all, _ := f.Client("all")
	assert.Equal(t, Breaker{Enabled: true, ConsecutiveFailures: 3, FailureRatio: 0.25, Window: 30 * time.Second,
		MinRequests: 40, BaseEjection: 5 * time.Second, MaxEjection: 2 * time.Minute,
		MaxEjectionPercent: 100, HalfOpenProbes: 2}, all.Breaker)
	r := all.Ranges["breaker.max_ejection_percent"]
	assert.Equal(t, "test.hcl:10,28-31", r.String(), "ranges are kept for errors found at run time")

	some, _ := f.Client("some")
	want := DefaultClientConfig("x").Breaker
	want.FailureRatio = 1
	want.BaseEjection = 10 * time.Minute
	want.MaxEjection = 10 * time.Minute // raised with a base above the default maximum
	assert.Equal(t, want, some.Breaker)

	off, _ := f.Client("triggers_off")
	assert.True(t, off.Breaker.Enabled)
	assert.Equal(t, 0, off.Breaker.ConsecutiveFailures, "an explicit 0 turns the trigger off, not to its default")
	assert.Equal(t, 0.0, off.Breaker.FailureRatio)

	disabled, _ := f.Client("off")
	want = DefaultClientConfig("x").Breaker
	want.Enabled = false
	assert.Equal(t, want, disabled.Breaker)
	assert.Empty(t, f.Warnings)

	null, _ := f.Client("null")
	assert.Equal(t, DefaultBreakerWindow, null.Breaker.Window, "null counts as absent")
}

func TestBreakerDisabledWithSettingsWarns(t *testing.T) {
	f := mustParse(t, `client "user" {
  breaker {
    enabled       = false
    base_ejection = "1m"
  }
}`)
	require.Len(t, f.Warnings, 1)
	w := f.Warnings[0]
	assert.Equal(t, "Breaker setting unused", w.Summary)
	assert.Equal(t, 4, w.Subject.Start.Line)
	assert.Contains(t, w.Detail, "base_ejection has no effect")
}

// One run reports every problem in a plugin's block, not just the first kind.
func TestSchemaBodyReportsAllErrors(t *testing.T) {
	src := `registry "zk" "main" {
  sever           = ["a"]
  session_timeout = "soon"
}`
	_, diags := Parse([]byte(src), "a.hcl", testCatalog())
	var got []string
	for _, d := range diags {
		got = append(got, fmt.Sprintf("%d:%d %s", d.Subject.Start.Line, d.Subject.Start.Column, d.Summary))
	}
	assert.Equal(t, []string{"1:22 Missing required argument", "2:3 Unsupported argument", "3:21 Invalid duration"}, got)
}

func TestSingleTarget(t *testing.T) {
	f := mustParse(t, `client "x" { target = "127.0.0.1:9000" }`)
	assert.Equal(t, []string{"127.0.0.1:9000"}, f.Clients[0].Target)
}

func TestSchemaBodyToJSON(t *testing.T) {
	f := mustParse(t, `
registry "zk" "main" {
  servers         = ["127.0.0.1:2181", "127.0.0.1:2182"]
  session_timeout = "10s"
  retries         = 3
  acl             = true
  labels          = { dc = "eu" }
}
registry "zk" "other" { servers = [] }
`)
	assert.JSONEq(t, `{"servers":["127.0.0.1:2181","127.0.0.1:2182"],"session_timeout":"10s","retries":3,"acl":true,"labels":{"dc":"eu"}}`,
		string(f.Registries[0].Config))
	assert.JSONEq(t, `{"servers":[]}`, string(f.Registries[1].Config), "absent optional attributes are left out, not null")
	assert.Contains(t, f.Registries[0].AttrRanges, "session_timeout")

	// The JSON decodes into a plugin's own struct with unknown fields refused.
	var cfg struct {
		Servers        []string          `json:"servers"`
		SessionTimeout string            `json:"session_timeout"`
		Retries        int               `json:"retries"`
		ACL            bool              `json:"acl"`
		Labels         map[string]string `json:"labels"`
	}
	require.NoError(t, f.Registries[0].Config.Decode(&cfg))
	assert.Equal(t, 3, cfg.Retries)
	assert.Equal(t, "10s", cfg.SessionTimeout)
}

func TestPluginDeclaredImplementation(t *testing.T) {
	sum := strings.Repeat("0f", 32)
	f := mustParse(t, `
plugin "registry" "nacos" {
  path   = "bin/kite-registry-nacos"
  sha256 = "`+strings.ToUpper(sum)+`"
  args   = ["-v"]
  env    = { NACOS_NS = "dev" }
}
registry "nacos" "main" {
  addr      = "127.0.0.1:8848"
  weight    = 2.5
  nested    = { a = [1, 2] }
  nothing   = null
}
server "user" {
  listen   = "127.0.0.1:9000"
  registry = "main"
}
client "user" { registry = "nacos" }
`)
	require.Len(t, f.Plugins, 1)
	p := f.Plugins[0]
	assert.Equal(t, spi.KindRegistry, p.Kind)
	assert.Equal(t, "bin/kite-registry-nacos", p.Path, "relative to the file's directory (here '.')")
	assert.Equal(t, sum, p.SHA256, "checksums are normalised to lower case")
	assert.Equal(t, []string{"-v"}, p.Args)
	assert.Equal(t, map[string]string{"NACOS_NS": "dev"}, p.Env)

	reg := f.Registries[0]
	assert.Same(t, p, reg.Plugin)
	assert.JSONEq(t, `{"addr":"127.0.0.1:8848","weight":2.5,"nested":{"a":[1,2]}}`, string(reg.Config))
	assert.Len(t, reg.AttrRanges, 4)

	implicit, ok := f.Component(spi.KindRegistry, "nacos")
	require.True(t, ok)
	assert.Same(t, p, implicit.Plugin)
}

func TestPluginShadowingIsAWarning(t *testing.T) {
	src := `plugin "codec" "json" {
  path   = "/opt/kite/json"
  sha256 = "` + strings.Repeat("a", 64) + `"
}`
	f, diags := Parse([]byte(src), "w.hcl", testCatalog())
	require.False(t, diags.HasErrors(), diags.Error())
	require.Len(t, f.Warnings, 1)
	assert.Equal(t, "Plugin shadows a compiled-in implementation", f.Warnings[0].Summary)
}

func TestInsecureSkipVerifyWarns(t *testing.T) {
	f := mustParse(t, `client "x" {
  tls { insecure_skip_verify = true }
}`)
	require.Len(t, f.Warnings, 1)
	assert.Equal(t, 2, f.Warnings[0].Subject.Start.Line)
	assert.True(t, f.Clients[0].TLS.InsecureSkipVerify)
}

func TestEnv(t *testing.T) {
	t.Setenv("KITE_TEST_TOKEN", "from-env")
	t.Setenv("KITE_TEST_EMPTY", "")
	f := mustParse(t, `
filter "auth" "a" { token = env("KITE_TEST_TOKEN") }
filter "auth" "b" { token = env("KITE_TEST_SURELY_UNSET", "fallback") }
filter "auth" "c" { token = env("KITE_TEST_EMPTY", "fallback") }
filter "auth" "d" { token = "Bearer ${env("KITE_TEST_TOKEN")}" }
`)
	tokens := map[string]string{}
	for _, c := range f.Filters {
		var v struct{ Token string }
		require.NoError(t, json.Unmarshal(c.Config, &v))
		tokens[c.Label] = v.Token
	}
	assert.Equal(t, map[string]string{"a": "from-env", "b": "fallback", "c": "", "d": "Bearer from-env"}, tokens)

	for src, want := range map[string]string{
		`filter "auth" "a" { token = env("KITE_TEST_SURELY_UNSET") }`: "KITE_TEST_SURELY_UNSET is not set",
		`filter "auth" "a" { token = env("A", "b", "c") }`:            "at most one default",
		`filter "auth" "a" { token = env() }`:                         "Not enough function arguments",
		`filter "auth" "a" { token = env("") }`:                       "must not be empty",
		`filter "auth" "a" { token = nope("x") }`:                     "Call to unknown function",
	} {
		_, diags := Parse([]byte(src), "e.hcl", testCatalog())
		require.True(t, diags.HasErrors(), src)
		assert.Contains(t, diags.Error(), want, src)
		assert.Equal(t, 1, diags[0].Subject.Start.Line)
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "4096": 4096, "512B": 512, "512 b": 512,
		"1KiB": 1024, "64KiB": 64 << 10, "4MiB": 4 << 20, "4mib": 4 << 20, "1GiB": 1 << 30, "2TiB": 2 << 40,
		"1kB": 1000, "1KB": 1000, "10MB": 10_000_000, "1GB": 1e9, "1TB": 1e12,
		"1.5KiB": 1536, "0.5MiB": 512 << 10, "1.0001B": 1, " 8KiB ": 8192,
		"9223372036854775807": 1<<63 - 1,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, got, in)
		}
	}
	bad := map[string]string{
		"": "empty", "MiB": "does not start with a number", "-1": "negative", "-1KiB": "negative",
		"4M": "unknown unit", "4 megs": "unknown unit", "1..2KiB": "not a number",
		"9223372036854775808": "too large", "8589934592GiB": "too large", "1e30": "unknown unit",
		"99999999999999999999TiB": "too large", "9000000000.5GiB": "too large",
	}
	for in, want := range bad {
		_, err := ParseSize(in)
		if assert.Error(t, err, in) {
			assert.Contains(t, err.Error(), want, in)
		}
	}
	for n, want := range map[int64]string{0: "0B", 100: "100B", 1024: "1KiB", 1536: "1536B", 4 << 20: "4MiB", 3 << 30: "3GiB", 1 << 40: "1TiB"} {
		assert.Equal(t, want, FormatSize(n))
		back, err := ParseSize(want)
		require.NoError(t, err)
		assert.Equal(t, n, back)
	}
}

func TestSizeAttributeAcceptsNumbers(t *testing.T) {
	f := mustParse(t, `server "x" {
  listen = "127.0.0.1:0"
  limits {
    max_frame    = 1024 * 1024
    max_metadata = "${2 * 1024}B"
  }
}`)
	assert.EqualValues(t, 1<<20, f.Servers[0].Limits.MaxFrame)
	assert.EqualValues(t, 2048, f.Servers[0].Limits.MaxMetadata)
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.hcl"), testCatalog())
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestDefaultCatalogWhenNil(t *testing.T) {
	// spi.Default holds whatever is linked into this test binary (nothing
	// of the kinds used here), so a transport reference must fail.
	_, diags := Parse([]byte(`server "x" { listen = ":0" }`), "d.hcl", nil)
	assert.True(t, diags.HasErrors())
}

func TestBadSchemaIsADiagnostic(t *testing.T) {
	cat := testCatalog()
	require.NoError(t, cat.Add(spi.Entry{Kind: spi.KindBalancer, Name: "broken", New: func(spi.Config) (any, error) { return nil, nil },
		Schema: spi.Schema{{Name: "not valid", Type: spi.TypeString}}}))
	_, diags := Parse([]byte(`balancer "broken" "b" {}`), "b.hcl", cat)
	require.True(t, diags.HasErrors())
	assert.Equal(t, "Invalid plugin schema", diags[0].Summary)
}

// TestConfigDocCoversEverything keeps docs/CONFIG.md honest: every
// attribute and block of every schema appears as a table row of its block.
func TestConfigDocCoversEverything(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "CONFIG.md"))
	require.NoError(t, err)
	sections := map[string]*hcl.BodySchema{
		"plugin": pluginSchema, "server": serverSchema, "server.limits": limitsSchema,
		"compression": compressionSchema, "server.tls": serverTLSSchema, "client": clientSchema,
		"client.retry": retrySchema, "client.pool": poolSchema, "client.heartbeat": heartbeatSchema,
		"client.breaker": breakerSchema, "client.tls": clientTLSSchema, "client.method": methodSchema,
		"admin": adminSchema, "log": logSchema,
	}
	for sec, schema := range sections {
		// A section starts at a heading naming it in backticks and runs to the next heading.
		re := regexp.MustCompile("(?ms)^#+ `" + regexp.QuoteMeta(sec) + "`.*?(\n#|\\z)")
		body := re.Find(doc)
		if !assert.NotNil(t, body, "docs/CONFIG.md has no section headed `%s`", sec) {
			continue
		}
		for _, a := range schema.Attributes {
			assert.Contains(t, string(body), "| `"+a.Name+"` |", "section %s lacks attribute %s", sec, a.Name)
		}
		for _, b := range schema.Blocks {
			assert.Contains(t, string(body), "`"+b.Type+"`", "section %s lacks block %s", sec, b.Type)
		}
	}
}
