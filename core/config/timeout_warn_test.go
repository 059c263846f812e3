package config

import (
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A call timeout no call can meet loads (it is not wrong, only
// surprising) but is warned about at its position, with the value its
// author likely meant.
func TestTooShortCallTimeoutWarns(t *testing.T) {
	src := `client "c" {
  target  = ["127.0.0.1:1"]
  timeout = "1ns"
  method "S.M" { timeout = "20us" }
}`
	f, diags := Parse([]byte(src), "t.hcl", testCatalog())
	require.False(t, diags.HasErrors(), diags.Error())
	require.Len(t, f.Warnings, 2)
	w := f.Warnings[0]
	assert.Equal(t, hcl.DiagWarning, w.Severity)
	assert.Equal(t, "Timeout too short to be met", w.Summary)
	assert.Equal(t, `"timeout" = 1ns is under 1ms: too short to send a call and get its answer (a loopback round trip alone takes tens of microseconds, a first connection more), so calls would fail with DeadlineExceeded. Did you mean "1ms"?`, w.Detail)
	assert.Equal(t, 3, w.Subject.Start.Line)
	assert.Equal(t, 13, w.Subject.Start.Column)
	assert.Contains(t, f.Warnings[1].Detail, `"timeout" = 20µs is under 1ms`)
	assert.Contains(t, f.Warnings[1].Detail, `Did you mean "20ms"?`)
	assert.Equal(t, time.Nanosecond, f.Clients[0].Timeout)

	// 1ms and more: no warning.
	f, diags = Parse([]byte(`client "c" {
  target  = ["127.0.0.1:1"]
  timeout = "1ms"
}`), "t.hcl", testCatalog())
	require.False(t, diags.HasErrors(), diags.Error())
	assert.Empty(t, f.Warnings)
}

// A plugin block's start_timeout bounds its start; it must be positive.
func TestPluginStartTimeout(t *testing.T) {
	sum := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	f, diags := Parse([]byte(`plugin "filter" "slow" {
  path          = "/bin/true"
  sha256        = "`+sum+`"
  start_timeout = "45s"
}`), "p.hcl", testCatalog())
	require.False(t, diags.HasErrors(), diags.Error())
	require.Len(t, f.Plugins, 1)
	assert.Equal(t, 45*time.Second, f.Plugins[0].StartTimeout)
	assert.Equal(t, 4, f.Plugins[0].Ranges["start_timeout"].Start.Line)

	_, diags = Parse([]byte(`plugin "filter" "slow" {
  path          = "/bin/true"
  sha256        = "`+sum+`"
  start_timeout = "0s"
}`), "p.hcl", testCatalog())
	require.True(t, diags.HasErrors())
	assert.Equal(t, 4, diags[0].Subject.Start.Line)
}
