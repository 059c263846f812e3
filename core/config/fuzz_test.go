package config

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, every
// diagnostic must format, and a file that parses must hold its invariants.
func FuzzParse(f *testing.F) {
	for _, p := range []string{filepath.Join("..", "..", "kite.hcl"), filepath.Join("testdata", "typos.hcl")} {
		if src, err := os.ReadFile(p); err == nil {
			f.Add(src)
		}
	}
	for _, tc := range diagCases {
		f.Add([]byte(tc.src))
	}
	f.Add([]byte(`plugin "registry" "x" { path = "a" sha256 = "` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `" }
registry "x" "y" { a = { b = [1, "c", true] } }
client "c" { target = ["a:1"]  method "A.B" { retry { codes = ["Aborted"] } } }`))
	cat := testCatalog()
	f.Fuzz(func(t *testing.T, src []byte) {
		file, diags := Parse(src, "fuzz.hcl", cat)
		if err := FormatDiagnostics(io.Discard, diags, Sources("fuzz.hcl", src)); err != nil {
			t.Fatal(err)
		}
		if diags.HasErrors() {
			if file != nil {
				t.Fatal("file returned with errors")
			}
			if err := DiagnosticsError(diags, nil); err == nil || err.Error() == "" {
				t.Fatal("errors without an error message")
			}
			return
		}
		for _, comps := range [][]*Component{file.Registries, file.Balancers, file.Filters, file.Codecs, file.Compressors} {
			for _, c := range comps {
				if !json.Valid(c.Config) {
					t.Fatalf("%s %q: invalid JSON config %q", c.Kind, c.Label, c.Config)
				}
			}
		}
		for _, s := range file.Servers {
			if s.Listen == "" || s.Limits.MaxMetadata > s.Limits.MaxFrame || s.Transport == "" {
				t.Fatalf("server %q breaks an invariant: %+v", s.Name, s)
			}
		}
		for _, c := range file.Clients {
			if c.Retry.MaxAttempts < 1 || c.Pool.ConnsPerEndpoint < 1 || (len(c.Target) == 0) == (c.Registry == "") {
				t.Fatalf("client %q breaks an invariant: %+v", c.Name, c)
			}
			if b := c.Breaker; b.Window <= 0 || b.BaseEjection <= 0 || b.MaxEjection < b.BaseEjection ||
				b.MaxEjectionPercent < 1 || b.MaxEjectionPercent > 100 || b.FailureRatio < 0 || b.FailureRatio > 1 ||
				b.ConsecutiveFailures < 0 || b.MinRequests < 1 || b.HalfOpenProbes < 1 {
				t.Fatalf("client %q breaker breaks an invariant: %+v", c.Name, b)
			}
		}
	})
}
