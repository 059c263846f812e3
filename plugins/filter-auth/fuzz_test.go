package authfilter

import (
	"context"
	"strings"
	"testing"

	"github.com/kiterpc/kite/spi"
)

// FuzzAuthMetadata feeds the server side of the filter arbitrary
// authorization metadata (possibly repeated, with any bytes) and method
// names. The filter must never panic, must admit a call exactly when the
// metadata's first authorization value is "Bearer" (any case) and a
// configured token (surrounding blanks ignored) and the method's rules
// allow its principal, and must refuse with Unauthenticated or
// PermissionDenied only, never running the handler then.
func FuzzAuthMetadata(f *testing.F) {
	const tokA, tokB = "tok-a", "tok-b"
	filt, err := NewFilter(Options{
		Principals:    map[string]string{"alice": tokA, "bob": tokB},
		PublicMethods: []string{"Health.*"},
		Methods:       map[string][]string{"Admin.*": {"alice"}},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("Bearer tok-a", "", "Svc.Get")
	f.Add("bearer   tok-b  ", "", "Admin.Drop")
	f.Add("Bearer", "Bearer tok-a", "Svc.Get")
	f.Add("Basic dG9rLWE=", "", "Svc.Get")
	f.Add("", "", "Health.Check")
	f.Add("Bearer tok-a\x00", "Bearer tok-b", "Admin.X")
	f.Add("BEARER\ttok-a", "", "Svc.Get")
	f.Fuzz(func(t *testing.T, first, second, method string) {
		md := &spi.Metadata{}
		if first != "" {
			md.Add(spi.MetaAuthorization, first)
		}
		if second != "" {
			md.Add(spi.MetaAuthorization, second)
		}
		ran := false
		var principal string
		inv := filt.Wrap(func(ctx context.Context, c *spi.Call) error {
			ran = true
			principal, _ = PrincipalFrom(ctx)
			return nil
		})
		call := &spi.Call{Side: spi.ServerSide, Method: method, Meta: md}
		err := inv(context.Background(), call)

		// The expected decision, from the rules as documented.
		public := strings.HasPrefix(method, "Health.")
		want := ""
		if v, ok := md.Lookup(spi.MetaAuthorization); ok && len(v) > len("bearer ") && strings.EqualFold(v[:len("bearer ")], "bearer ") {
			switch strings.TrimSpace(v[len("bearer "):]) {
			case tokA:
				want = "alice"
			case tokB:
				want = "bob"
			}
		}
		admit := public || (want != "" && (!strings.HasPrefix(method, "Admin.") || want == "alice"))
		if admit != (err == nil) || ran != (err == nil) {
			t.Fatalf("method %q, authorization %q/%q: admitted=%v (handler ran %v), err=%v; want admitted=%v", method, first, second, err == nil, ran, err, admit)
		}
		if err != nil {
			if c := spi.CodeOf(err); c != spi.Unauthenticated && c != spi.PermissionDenied {
				t.Fatalf("refused with %v, want Unauthenticated or PermissionDenied: %v", c, err)
			}
			if (strings.Contains(err.Error(), tokA) && !strings.Contains(method, tokA)) || (strings.Contains(err.Error(), tokB) && !strings.Contains(method, tokB)) {
				t.Fatalf("error repeats a token: %v", err)
			}
			return
		}
		if !public && principal != want {
			t.Fatalf("principal %q, want %q", principal, want)
		}
	})
}
