// Package walkthrough follows docs/PLUGINS.md's "Write your first plugin
// in 10 minutes" step by step: it takes the walkthrough's go.mod,
// main.go and kite.hcl from the page itself (so the page cannot drift
// from what works), builds the plugin in a temporary module outside the
// repository with a replace pointing at this checkout, checks the
// kite.hcl, serves and calls through it, and sees the filter refuse a
// call without the key and pass one with it.
package walkthrough
