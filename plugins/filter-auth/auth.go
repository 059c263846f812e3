package authfilter

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/kiterpc/kite/spi"
)

// Verifier checks a bearer token presented for method and names the
// principal it belongs to. Returning an *spi.Error picks the code the caller
// sees (PermissionDenied for a valid token not allowed here, Unavailable
// when an identity provider cannot be reached); any other error becomes
// Unauthenticated.
type Verifier interface {
	Verify(ctx context.Context, token, method string) (principal string, err error)
}

// VerifierFunc adapts a function to Verifier.
type VerifierFunc func(ctx context.Context, token, method string) (string, error)

// Verify implements Verifier.
func (f VerifierFunc) Verify(ctx context.Context, token, method string) (string, error) {
	return f(ctx, token, method)
}

var (
	verifiersMu sync.RWMutex
	verifiers   = map[string]Verifier{}
)

// RegisterVerifier makes v available to kite.hcl as verifier = "name". Call
// it before the stack is built (from init or the top of main).
func RegisterVerifier(name string, v Verifier) {
	verifiersMu.Lock()
	defer verifiersMu.Unlock()
	verifiers[name] = v
}

func lookupVerifier(name string) (Verifier, bool) {
	verifiersMu.RLock()
	defer verifiersMu.RUnlock()
	v, ok := verifiers[name]
	return v, ok
}

type principalKey struct{}

// PrincipalFrom returns the principal the auth filter authenticated for the
// call whose context this is.
func PrincipalFrom(ctx context.Context) (string, bool) {
	p, ok := ctx.Value(principalKey{}).(string)
	return p, ok
}

// WithPrincipal returns ctx carrying principal, as the filter hands it to the
// handler (useful when testing handlers).
func WithPrincipal(ctx context.Context, principal string) context.Context {
	return context.WithValue(ctx, principalKey{}, principal)
}

// Options configure a Filter built in code. Every field is optional; a
// server-side filter needs Tokens, Principals or Verifier to admit anyone.
type Options struct {
	// Token is what a client sends.
	Token string
	// Tokens are accepted tokens whose principal is not named: each gets
	// TokenPrincipal(token), a non-secret fingerprint usable in Methods.
	Tokens []string
	// Principals maps a principal name to its token.
	Principals map[string]string
	// Verifier checks tokens the static ones do not match.
	Verifier Verifier
	// PublicMethods need no token: "Health.Check", "Health.*" or "*".
	PublicMethods []string
	// Methods maps a method pattern to the principals allowed to call it.
	// The most specific pattern wins: exact, then the longest "Svc.*",
	// then "*". Methods no pattern matches admit any principal.
	Methods map[string][]string
}

// Filter authenticates and authorises calls. Build it with NewFilter.
type Filter struct {
	header   string // "Bearer <token>" for clients, "" when none
	keys     []tokenKey
	verifier Verifier
	public   rules[struct{}]
	allowed  rules[map[string]bool]
}

type tokenKey struct {
	digest    [sha256.Size]byte
	principal string
}

// TokenPrincipal is the principal name of a token from the tokens list:
// "token-" and the first 8 hex digits of its SHA-256, which identifies it
// in logs and rules without revealing it.
func TokenPrincipal(token string) string {
	d := sha256.Sum256([]byte(token))
	return "token-" + hex.EncodeToString(d[:4])
}

// NewFilter builds a filter from o.
func NewFilter(o Options) (*Filter, error) {
	f := &Filter{verifier: o.Verifier}
	if tok := strings.TrimSpace(o.Token); tok != "" {
		if strings.ContainsAny(tok, " \t\r\n") {
			return nil, errors.New("token contains whitespace; a bearer token is one word")
		}
		f.header = "Bearer " + tok
	} else if o.Token != "" {
		return nil, errors.New("token is blank (is the environment variable it comes from empty?)")
	}
	add := func(token, principal, what string) error {
		token = strings.TrimSpace(token)
		if token == "" {
			return fmt.Errorf("%s: empty token (is the environment variable it comes from empty?)", what)
		}
		f.keys = append(f.keys, tokenKey{digest: sha256.Sum256([]byte(token)), principal: principal})
		return nil
	}
	for i, tok := range o.Tokens {
		if err := add(tok, TokenPrincipal(strings.TrimSpace(tok)), fmt.Sprintf("tokens[%d]", i)); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(o.Principals))
	for n := range o.Principals {
		names = append(names, n)
	}
	sort.Strings(names) // deterministic order: errors and duplicates report the same way each run
	for _, n := range names {
		if n == "" {
			return nil, errors.New("principals: empty principal name")
		}
		if err := add(o.Principals[n], n, fmt.Sprintf("principals[%q]", n)); err != nil {
			return nil, err
		}
	}
	for i := range f.keys {
		for j := range i {
			if f.keys[i].digest == f.keys[j].digest {
				return nil, fmt.Errorf("principals %q and %q share a token", f.keys[j].principal, f.keys[i].principal)
			}
		}
	}
	var err error
	pub := make(map[string]struct{}, len(o.PublicMethods))
	for _, m := range o.PublicMethods {
		pub[m] = struct{}{}
	}
	if f.public, err = newRules(pub); err != nil {
		return nil, fmt.Errorf("public_methods: %w", err)
	}
	allow := make(map[string]map[string]bool, len(o.Methods))
	for pat, ps := range o.Methods {
		set := make(map[string]bool, len(ps))
		for _, p := range ps {
			set[p] = true
		}
		allow[pat] = set
	}
	if f.allowed, err = newRules(allow); err != nil {
		return nil, fmt.Errorf("methods: %w", err)
	}
	return f, nil
}

// MetadataOnly implements spi.MetadataFilter: it decides from the token in the metadata, so the server refuses
// an unauthenticated call before decompressing or decoding its body.
func (*Filter) MetadataOnly() {}

// BeforeOnly implements spi.BeforeOnlyFilter: the filter acts before
// next (adds or checks the token) and returns next's result untouched,
// so served out of process it costs one exchange per call, not two.
func (*Filter) BeforeOnly() {}

// Wrap implements spi.Filter.
func (f *Filter) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		if call.Side == spi.ClientSide {
			if f.header != "" {
				if call.Meta == nil {
					call.Meta = &spi.Metadata{}
				}
				if _, set := call.Meta.Lookup(spi.MetaAuthorization); !set {
					call.Meta.Set(spi.MetaAuthorization, f.header)
				}
			}
			return next(ctx, call)
		}
		if _, ok := f.public.match(call.Method); ok {
			return next(ctx, call)
		}
		principal, err := f.authenticate(ctx, call)
		if err != nil {
			return err
		}
		if allowed, ok := f.allowed.match(call.Method); ok && !allowed[principal] {
			who := principal
			if who == "" {
				who = "the caller"
			}
			return spi.Errorf(spi.PermissionDenied, "%s may not call %s", who, call.Method)
		}
		return next(WithPrincipal(ctx, principal), call)
	}
}

func (f *Filter) authenticate(ctx context.Context, call *spi.Call) (string, error) {
	raw, ok := call.Meta.Lookup(spi.MetaAuthorization)
	if !ok {
		return "", spi.Errorf(spi.Unauthenticated, "%s needs a bearer token in %q metadata", call.Method, spi.MetaAuthorization)
	}
	token, ok := bearer(raw)
	if !ok {
		return "", spi.Errorf(spi.Unauthenticated, "malformed %q metadata: want \"Bearer <token>\"", spi.MetaAuthorization)
	}
	if p, ok := f.lookup(token); ok {
		return p, nil
	}
	if f.verifier == nil {
		if len(f.keys) == 0 {
			return "", spi.Errorf(spi.Unauthenticated, "this server's auth filter has no tokens, principals or verifier configured")
		}
		return "", spi.Errorf(spi.Unauthenticated, "invalid token")
	}
	p, err := f.verifier.Verify(ctx, token, call.Method)
	if err != nil {
		var se *spi.Error
		if errors.As(err, &se) {
			return "", se
		}
		return "", spi.WrapError(spi.Unauthenticated, err, "invalid token")
	}
	return p, nil
}

// lookup finds the principal of token among the static ones in constant
// time: comparing fixed-size digests hides the length, and visiting every
// entry hides which one matched.
func (f *Filter) lookup(token string) (string, bool) {
	d := sha256.Sum256([]byte(token))
	found := -1
	for i := range f.keys {
		if subtle.ConstantTimeCompare(d[:], f.keys[i].digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return f.keys[found].principal, true
}

// bearer extracts the token of "Bearer <token>"; the scheme is
// case-insensitive (RFC 6750 via RFC 9110).
func bearer(v string) (string, bool) {
	const scheme = "bearer "
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	tok := strings.TrimSpace(v[len(scheme):])
	return tok, tok != ""
}

// rules matches methods against patterns: "Svc.Method", "Svc.*" (every
// method of Svc), "*" (everything). The most specific pattern wins.
type rules[V any] struct {
	exact    map[string]V
	prefixes []prefixRule[V] // longest first
	any      *V
}

type prefixRule[V any] struct {
	prefix string // "Svc."
	v      V
}

func newRules[V any](m map[string]V) (rules[V], error) {
	r := rules[V]{exact: map[string]V{}}
	for pat, v := range m {
		switch {
		case pat == "*":
			r.any = &v
		case strings.HasSuffix(pat, ".*") && len(pat) > 2:
			if strings.Contains(pat[:len(pat)-2], "*") {
				return r, fmt.Errorf("pattern %q: only a trailing \".*\" or \"*\" is supported", pat)
			}
			r.prefixes = append(r.prefixes, prefixRule[V]{prefix: pat[:len(pat)-1], v: v})
		case pat == "" || strings.Contains(pat, "*"):
			return r, fmt.Errorf("pattern %q: use \"Svc.Method\", \"Svc.*\" or \"*\"", pat)
		default:
			r.exact[pat] = v
		}
	}
	sort.Slice(r.prefixes, func(i, j int) bool { return len(r.prefixes[i].prefix) > len(r.prefixes[j].prefix) })
	return r, nil
}

func (r *rules[V]) match(method string) (V, bool) {
	if v, ok := r.exact[method]; ok {
		return v, true
	}
	for _, p := range r.prefixes {
		if strings.HasPrefix(method, p.prefix) {
			return p.v, true
		}
	}
	if r.any != nil {
		return *r.any, true
	}
	var zero V
	return zero, false
}

type config struct {
	Token         string              `json:"token"`
	Tokens        []string            `json:"tokens"`
	Principals    map[string]string   `json:"principals"`
	Verifier      string              `json:"verifier"`
	PublicMethods []string            `json:"public_methods"`
	Methods       map[string][]string `json:"methods"`
}

// New builds the filter from its kite.hcl block.
func New(cfg spi.Config) (any, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	o := Options{Token: c.Token, Tokens: c.Tokens, Principals: c.Principals,
		PublicMethods: c.PublicMethods, Methods: c.Methods}
	if c.Verifier != "" {
		v, ok := lookupVerifier(c.Verifier)
		if !ok {
			return nil, fmt.Errorf("verifier %q is not registered (authfilter.RegisterVerifier must run before the stack is built)", c.Verifier)
		}
		o.Verifier = v
	}
	if o.Token == "" && len(o.Tokens) == 0 && len(o.Principals) == 0 && o.Verifier == nil {
		return nil, errors.New("set token (client side), or tokens, principals or verifier (server side)")
	}
	return NewFilter(o)
}

func init() {
	spi.Register(spi.Entry{
		Kind: spi.KindFilter, Name: "auth", Version: "1.0.0",
		Doc: "bearer-token authentication and per-method allow-lists",
		Schema: spi.Schema{
			{Name: "token", Type: spi.TypeString, Doc: `client: token to send, usually env("KITE_TOKEN")`},
			{Name: "tokens", Type: spi.TypeStringList, Doc: "server: accepted tokens (principal token-<sha256 prefix>)"},
			{Name: "principals", Type: spi.TypeStringMap, Doc: "server: principal name = token"},
			{Name: "verifier", Type: spi.TypeString, Doc: "server: name of a Verifier registered in code"},
			{Name: "public_methods", Type: spi.TypeStringList, Doc: `methods needing no token: "Svc.Method", "Svc.*", "*"`},
			{Name: "methods", Type: spi.FieldType("map(list(string))"), Doc: "method pattern = principals allowed; others get PermissionDenied"},
		},
		New: New,
	})
}
