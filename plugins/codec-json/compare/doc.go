// Package compare measures the JSON libraries that could back Kite's
// codec-json on Kite-like messages: a small request (~128 B), a 1 KiB
// message dominated by one string field, and a 64 KiB response holding a
// slice of structs. It is a module of its own so that the candidates'
// dependencies never reach Kite's go.mod.
//
// Run: go test -bench . -benchmem -benchtime=200ms
// With GOEXPERIMENT=jsonv2 it also measures encoding/json/v2.
package compare
